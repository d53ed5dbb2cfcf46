// File: images.cc
// `smctl images`: the baked snapshots, as a table or --json.
#include <cstdio>
#include <memory>

#include "cli/commands/commands.h"
#include "cli/render.h"

namespace supermachine::cli {

Verb AddImagesCommand(CLI::App& root, const GlobalOptions& globals) {
  auto json = std::make_shared<bool>(false);
  CLI::App* app = root.add_subcommand("images", "List baked snapshots");
  app->add_flag("--json", *json, "Print the ListSnapshotsResponse as JSON");
  return {app, [json, &globals]() {
            std::unique_ptr<Client> client;
            grpc::Status st = Client::Connect(globals, &client);
            v1::ListSnapshotsResponse resp;
            if (st.ok()) {
              st = client->Explain(
                  client->stub().ListSnapshots(client->UnaryContext().get(), {}, &resp));
            }
            if (!st.ok()) {
              return ReportError(st);
            }
            std::fputs((*json ? ToJson(resp) : SnapshotsTable(resp, NowUnixMs())).c_str(), stdout);
            return 0;
          }};
}

}  // namespace supermachine::cli
