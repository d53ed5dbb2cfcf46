// File: rm.cc
// `smctl rm SNAPSHOT...`: removes snapshots; prints each removed name, as `docker rmi` does.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/exit_codes.h"

namespace supermachine::cli {

Verb AddRmCommand(CLI::App& root, const GlobalOptions& globals) {
  struct Options {
    std::vector<std::string> names;
    bool force = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "rm", "Remove snapshots (refused while VMs use them; removing VMs needs the VM pool)");
  app->add_option("SNAPSHOT", opts->names, "Snapshot names")->required();
  app->add_flag("-f,--force", opts->force, "Also release the VMs using it (needs the VM pool)");
  return {app, [opts, &globals]() {
            std::unique_ptr<Client> client;
            grpc::Status st = Client::Connect(globals, &client);
            if (!st.ok()) {
              return ReportError(st);
            }
            // Like docker rm: try every name, report each failure, exit with the last error.
            int exit_code = kExitOk;
            for (const std::string& name : opts->names) {
              v1::RemoveSnapshotRequest req;
              req.set_name(name);
              req.set_force(opts->force);
              v1::RemoveSnapshotResponse resp;
              st = client->Explain(
                  client->stub().RemoveSnapshot(client->UnaryContext().get(), req, &resp));
              if (st.ok()) {
                std::printf("%s\n", name.c_str());
              } else {
                exit_code = ReportError(st);
              }
            }
            return exit_code;
          }};
}

}  // namespace supermachine::cli
