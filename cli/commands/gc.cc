// File: gc.cc
// `smctl gc [--dry-run] [--json]`: the daemon removes what no snapshot needs (unreferenced
// layers, unused delta layers, failed bakes' leftovers; daemon/bake/gc.h) and says what and how
// many bytes. Snapshots are removed with `smctl rm`, which makes their layers garbage.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/exit_codes.h"
#include "cli/render.h"

namespace supermachine::cli {

std::string GcText(const v1::GcResponse& resp) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::GcItem& item : resp.removed()) {
    rows.push_back({item.kind(), HumanSize(item.bytes()), item.path()});
  }
  std::string out;
  if (!rows.empty()) {
    out = RenderTable({"KIND", "SIZE", "PATH"}, rows);
  }
  out += std::string(resp.dry_run() ? "would free " : "freed ") + HumanSize(resp.bytes_freed()) +
         " (" + std::to_string(resp.removed_size()) + " item" +
         (resp.removed_size() == 1 ? "" : "s") + (resp.dry_run() ? "; nothing removed" : "") +
         ")\n";
  return out;
}

Verb AddGcCommand(CLI::App& root, const GlobalOptions& globals) {
  struct Options {
    bool dry_run = false;
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "gc", "Remove layers and delta layers no snapshot uses and failed bakes' leftovers");
  app->add_flag("-n,--dry-run", opts->dry_run, "Only list what would be removed and its size");
  app->add_flag("--json", opts->json, "Print the GcResponse as JSON");
  return {app, [opts, &globals]() {
            std::unique_ptr<Client> client;
            grpc::Status st = Client::Connect(globals, &client);
            v1::GcRequest req;
            req.set_dry_run(opts->dry_run);
            v1::GcResponse resp;
            if (st.ok()) {
              st = client->Explain(client->stub().Gc(client->UnaryContext().get(), req, &resp));
            }
            if (!st.ok()) {
              return ReportError(st);
            }
            std::fputs((opts->json ? ToJson(resp) : GcText(resp)).c_str(), stdout);
            for (const std::string& e : resp.errors()) {
              std::fprintf(stderr, "smctl gc: could not remove %s\n", e.c_str());
            }
            return resp.errors().empty() ? kExitOk : kExitFailure;
          }};
}

}  // namespace supermachine::cli
