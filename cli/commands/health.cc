// File: health.cc
// `smctl health`: is the daemon serving, which KVM does the host offer, and what is wrong.
// Exits 0 while the daemon serves (problems are printed as warnings), 1 when it does not.
#include <cstdio>
#include <memory>

#include "cli/commands/commands.h"
#include "cli/exit_codes.h"
#include "cli/render.h"

namespace supermachine::cli {

Verb AddHealthCommand(CLI::App& root, const GlobalOptions& globals) {
  auto json = std::make_shared<bool>(false);
  CLI::App* app = root.add_subcommand("health", "Check the daemon's health (KVM, store)");
  app->add_flag("--json", *json, "Print the HealthResponse as JSON");
  return {app, [json, &globals]() {
            std::unique_ptr<Client> client;
            grpc::Status st = Client::Connect(globals, &client);
            v1::HealthResponse resp;
            if (st.ok()) {
              st = client->Explain(client->stub().Health(client->UnaryContext().get(), {}, &resp));
            }
            if (!st.ok()) {
              return ReportError(st);
            }
            if (*json) {
              std::fputs(ToJson(resp).c_str(), stdout);
            } else {
              std::printf("Serving: %s\nKVM:     %s\n", resp.serving() ? "yes" : "no",
                          resp.kvm().c_str());
              if (resp.problems_size() > 0) {
                std::printf("Problems:\n");
                for (const std::string& p : resp.problems()) {
                  std::printf("  - %s\n", p.c_str());
                }
              }
            }
            return resp.serving() ? kExitOk : kExitFailure;
          }};
}

}  // namespace supermachine::cli
