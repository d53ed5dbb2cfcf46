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
      "rm", "Release VMs (destroyed, never reused) or remove snapshots (refused while VMs use them)");
  app->add_option("NAME", opts->names, "VM ids or names, or snapshot names")->required();
  app->add_flag("-f,--force", opts->force, "For a snapshot: also release the VMs using it");
  return {app, [opts, &globals]() {
            std::unique_ptr<Client> client;
            grpc::Status st = Client::Connect(globals, &client);
            if (!st.ok()) {
              return ReportError(st);
            }
            // Like docker rm: try every name, report each failure, exit with the last error.
            int exit_code = kExitOk;
            for (const std::string& name : opts->names) {
              // A VM first: `smctl rm ID` right after `smctl run -d` is the common case.
              v1::ReleaseRequest rel;
              rel.set_vm_id(name);
              v1::ReleaseResponse rel_resp;
              st = client->stub().Release(client->UnaryContext().get(), rel, &rel_resp);
              if (st.ok()) {
                std::printf("%s\n", name.c_str());
                continue;
              }
              if (st.error_code() != grpc::StatusCode::NOT_FOUND &&
                  st.error_code() != grpc::StatusCode::UNIMPLEMENTED) {
                exit_code = ReportError(client->Explain(st));
                continue;
              }
              v1::RemoveSnapshotRequest req;
              req.set_name(name);
              req.set_force(opts->force);
              v1::RemoveSnapshotResponse resp;
              st = client->Explain(
                  client->stub().RemoveSnapshot(client->UnaryContext().get(), req, &resp));
              if (st.ok()) {
                std::printf("%s\n", name.c_str());
              } else if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
                exit_code = ReportError(grpc::Status(
                    grpc::StatusCode::NOT_FOUND,
                    "no VM or snapshot named '" + name + "' (see `smctl ps` and `smctl images`)"));
              } else {
                exit_code = ReportError(st);
              }
            }
            return exit_code;
          }};
}

}  // namespace supermachine::cli
