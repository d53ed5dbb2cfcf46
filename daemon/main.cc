// File: main.cc
// supermachined entry point: parses flags and wires the domain libraries together.
// The control plane (gRPC service, pool, store) is wired in as those libraries land.
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "supermachined: turns OCI images into snapshotted KVM microVMs and hands out\n"
      "pre-restored VMs over a gRPC control plane on a Unix socket.",
      "supermachined"};
  std::string socket_path;
  std::string state_dir = "/var/lib/supermachine";
  app.add_option("--socket", socket_path,
                 "Unix socket to listen on (default /run/supermachine/supermachined.sock as "
                 "root, $XDG_RUNTIME_DIR/supermachine/supermachined.sock otherwise)");
  app.add_option("--state-dir", state_dir, "Directory for the store, caches and snapshots")
      ->capture_default_str();
  bool version = false;
  app.add_flag("--version", version, "Print the version and exit");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::printf("supermachined %s\n", SM_VERSION);
    return 0;
  }
  std::fprintf(stderr,
               "supermachined %s: the control plane is not wired yet in this build "
               "(see docs/design/architecture.md for the roadmap).\n",
               SM_VERSION);
  return 2;
}
