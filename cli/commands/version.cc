// File: version.cc
// `smctl version`: the client's version, then the daemon's (or why it cannot be asked).
#include <cstdio>
#include <memory>

#include "cli/commands/commands.h"
#include "cli/render.h"

namespace supermachine::cli {

Verb AddVersionCommand(CLI::App& root, const GlobalOptions& globals) {
  auto json = std::make_shared<bool>(false);
  CLI::App* app = root.add_subcommand("version", "Print smctl's and supermachined's versions");
  app->add_flag("--json", *json, "Print JSON ({client, daemon: VersionResponse})");
  return {app, [json, &globals]() {
            std::unique_ptr<Client> client;
            grpc::Status st = Client::Connect(globals, &client);
            v1::VersionResponse resp;
            if (st.ok()) {
              st = client->Explain(client->stub().Version(client->UnaryContext().get(), {}, &resp));
            }
            if (*json) {
              if (st.ok()) {
                std::string daemon = ToJson(resp);
                std::printf("{\n  \"client\": \"%s\",\n  \"daemon\": %s}\n", SM_VERSION, daemon.c_str());
              }
            } else {
              std::printf("Client: smctl %s\n", SM_VERSION);
              if (st.ok()) {
                std::printf("Daemon: supermachined %s (API %s)\n", resp.daemon().c_str(),
                            resp.api().c_str());
              }
            }
            return st.ok() ? 0 : ReportError(st);
          }};
}

}  // namespace supermachine::cli
