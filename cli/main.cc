// File: main.cc
// smctl: command-line client of supermachined. Parses the verb, connects to the daemon's Unix
// socket, prints results. Verbs talk to the daemon only through the generated API client.
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"

int main(int argc, char** argv) {
  CLI::App app{"smctl: run OCI container images as snapshotted KVM microVMs", "smctl"};
  app.require_subcommand(1);
  std::string socket_path;
  app.add_option("--socket", socket_path, "Daemon socket (default: as supermachined)");

  app.add_subcommand("run", "Bake IMAGE if needed, acquire a VM from it, forward ports, stream logs");
  app.add_subcommand("bake", "Bake IMAGE into a snapshot");
  app.add_subcommand("exec", "Run a command in a VM");
  app.add_subcommand("ps", "List VMs");
  app.add_subcommand("images", "List baked snapshots");
  app.add_subcommand("rm", "Remove a VM or snapshot");
  app.add_subcommand("logs", "Show a VM's output");
  app.add_subcommand("health", "Check the daemon's health");
  auto* version = app.add_subcommand("version", "Print the client version");

  CLI11_PARSE(app, argc, argv);
  if (version->parsed()) {
    std::printf("smctl %s\n", SM_VERSION);
    return 0;
  }
  std::fprintf(stderr, "smctl: '%s' needs the daemon control plane, which this build does not have yet\n",
               app.get_subcommands().front()->get_name().c_str());
  return 2;
}
