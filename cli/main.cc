// File: main.cc
// smctl: command-line client of supermachined. Registers the verbs (one per file in
// commands/), parses, runs the chosen one and returns its exit status.
#include <cstdio>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/exit_codes.h"

int main(int argc, char** argv) {
  using namespace supermachine::cli;
  CLI::App app{"smctl: run OCI container images as snapshotted KVM microVMs", "smctl"};
  app.require_subcommand(1);
  GlobalOptions globals;
  app.add_option("--socket", globals.socket,
                 "Daemon socket (default: $SUPERMACHINE_SOCKET, else as supermachined: "
                 "/run/supermachine/supermachined.sock as root, "
                 "$XDG_RUNTIME_DIR/supermachine/supermachined.sock otherwise)");
  app.add_option("--host", globals.host,
                 "Remote daemon HOST:PORT over TLS (default: $SUPERMACHINE_HOST; unset: the socket)");
  app.add_option("--tls-ca", globals.tls_ca, "CA (PEM) of the remote daemon's certificate ($SUPERMACHINE_TLS_CA)");
  app.add_option("--token-file", globals.token_file,
                 "Bearer token for --host ($SUPERMACHINE_TOKEN_FILE)");
  app.add_option("--tls-cert", globals.tls_cert, "Client certificate (PEM) for mTLS ($SUPERMACHINE_TLS_CERT)");
  app.add_option("--tls-key", globals.tls_key, "Client key (PEM) for mTLS ($SUPERMACHINE_TLS_KEY)");
  app.add_option("--timeout", globals.timeout_seconds, "Seconds to wait for each daemon reply")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.set_version_flag("--version", std::string("smctl ") + SM_VERSION);

  std::vector<Verb> verbs = {
      AddRunCommand(app, globals),    AddBakeCommand(app, globals),   AddExecCommand(app, globals),
      AddPsCommand(app, globals),     AddImagesCommand(app, globals), AddRmCommand(app, globals),
      AddLogsCommand(app, globals),   AddHealthCommand(app, globals), AddVersionCommand(app, globals),
      AddGcCommand(app, globals),     AddInspectCommand(app, globals), AddVolumeCommand(app, globals),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0 through here; real parse errors exit kExitUsage.
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  for (const Verb& v : verbs) {
    if (v.app->parsed()) {
      return v.run();
    }
  }
  return kExitUsage;
}
