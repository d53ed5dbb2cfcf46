// File: commands.h
// One function per verb, each in its own file: it adds its subcommand (flags, positionals,
// help) to the root app and returns what to run once parsing chose it. Verbs only talk to the
// daemon through Client and only print through render.h, as containerd's ctr commands do.
#pragma once

#include <functional>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/client.h"

namespace supermachine::cli {

struct Verb {
  CLI::App* app = nullptr;
  std::function<int()> run;  // the exit status
};

Verb AddVersionCommand(CLI::App& root, const GlobalOptions& globals);
Verb AddHealthCommand(CLI::App& root, const GlobalOptions& globals);
Verb AddImagesCommand(CLI::App& root, const GlobalOptions& globals);
Verb AddPsCommand(CLI::App& root, const GlobalOptions& globals);
Verb AddRmCommand(CLI::App& root, const GlobalOptions& globals);
Verb AddRunCommand(CLI::App& root, const GlobalOptions& globals);
Verb AddBakeCommand(CLI::App& root, const GlobalOptions& globals);
Verb AddExecCommand(CLI::App& root, const GlobalOptions& globals);
Verb AddLogsCommand(CLI::App& root, const GlobalOptions& globals);

// Streams a VM's output to stdout until the stream ends (with `follow`, until the VM ends);
// returns the exit status. Shared by `logs` and `run` (which follows after acquiring).
int StreamLogs(Client& client, const std::string& vm_id, bool follow);

// Milliseconds since the Unix epoch, for "created ... ago" columns.
int64_t NowUnixMs();

}  // namespace supermachine::cli
