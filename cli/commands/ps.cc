// File: ps.cc
// `smctl ps [-a]`: running VMs, or with -a also ended ones with their end cause.
#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/commands/commands.h"
#include "cli/render.h"

namespace supermachine::cli {

Verb AddPsCommand(CLI::App& root, const GlobalOptions& globals) {
  struct Options {
    bool all = false;
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("ps", "List VMs");
  app->add_flag("-a,--all", opts->all, "Also show ended VMs and why they ended");
  app->add_flag("--json", opts->json, "Print the ListVMsResponse as JSON");
  return {app, [opts, &globals]() {
            std::unique_ptr<Client> client;
            grpc::Status st = Client::Connect(globals, &client);
            v1::ListVMsRequest req;
            req.set_all(opts->all);
            v1::ListVMsResponse resp;
            if (st.ok()) {
              st = client->Explain(client->stub().ListVMs(client->UnaryContext().get(), req, &resp));
            }
            if (!st.ok()) {
              return ReportError(st);
            }
            std::fputs((opts->json ? ToJson(resp) : VmsTable(resp, NowUnixMs())).c_str(), stdout);
            return 0;
          }};
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace supermachine::cli
