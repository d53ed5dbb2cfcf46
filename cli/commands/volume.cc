// File: volume.cc
// `smctl volume ls [--json]` and `smctl volume rm NAME...`: the daemon's named volumes
// (docs/volumes.md). Volumes are made by `smctl run -v NAME:/guest/path`, not here.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/exit_codes.h"
#include "cli/render.h"

namespace supermachine::cli {

std::string VolumesTable(const v1::ListVolumesResponse& resp, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Volume& v : resp.volumes()) {
    rows.push_back({v.name(), HumanSize(v.size_bytes()), HumanAgo(v.created_unix_ms(), now_ms),
                    v.attached_vm().empty() ? "-" : v.attached_vm() + ":" + v.guest_path(),
                    v.path()});
  }
  return RenderTable({"NAME", "SIZE", "CREATED", "ATTACHED", "PATH"}, rows);
}

Verb AddVolumeCommand(CLI::App& root, const GlobalOptions& globals) {
  struct Options {
    bool json = false;
    std::vector<std::string> names;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "volume", "Named volumes: ext4 disks that outlive VMs (made by `smctl run -v NAME:/path`)");
  app->require_subcommand(1);
  CLI::App* ls = app->add_subcommand("ls", "List named volumes and the VM holding each");
  ls->add_flag("--json", opts->json, "Print the ListVolumesResponse as JSON");
  CLI::App* rm = app->add_subcommand(
      "rm", "Delete named volumes and their data (refused while a VM holds one)");
  rm->add_option("NAME", opts->names, "Volume names")->required();
  return {app, [opts, ls, &globals]() {
            std::unique_ptr<Client> client;
            grpc::Status st = Client::Connect(globals, &client);
            if (!st.ok()) {
              return ReportError(st);
            }
            if (ls->parsed()) {
              v1::ListVolumesResponse resp;
              st = client->Explain(
                  client->stub().ListVolumes(client->UnaryContext().get(), {}, &resp));
              if (!st.ok()) {
                return ReportError(st);
              }
              std::fputs((opts->json ? ToJson(resp) : VolumesTable(resp, NowUnixMs())).c_str(),
                         stdout);
              return kExitOk;
            }
            // As `smctl rm`: try every name, report each failure, exit with the last error.
            int exit_code = kExitOk;
            for (const std::string& name : opts->names) {
              v1::RemoveVolumeRequest req;
              req.set_name(name);
              v1::RemoveVolumeResponse resp;
              st = client->Explain(
                  client->stub().RemoveVolume(client->UnaryContext().get(), req, &resp));
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
