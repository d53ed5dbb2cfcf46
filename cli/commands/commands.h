// File: commands.h
// One function per verb, each in its own file: it adds its subcommand (flags, positionals,
// help) to the root app and returns what to run once parsing chose it. Verbs only talk to the
// daemon through Client and only print through render.h, as containerd's ctr commands do.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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
Verb AddGcCommand(CLI::App& root, const GlobalOptions& globals);
// `smctl gc`'s text form: a KIND/SIZE/PATH table and the bytes freed (gc.cc).
std::string GcText(const v1::GcResponse& resp);
Verb AddInspectCommand(CLI::App& root, const GlobalOptions& globals);
Verb AddVolumeCommand(CLI::App& root, const GlobalOptions& globals);
// `smctl volume ls`'s table: NAME SIZE CREATED ATTACHED (vm:/path or -) PATH (volume.cc).
std::string VolumesTable(const v1::ListVolumesResponse& resp, int64_t now_ms);

// `smctl inspect`'s text form of a VM and its network (inspect.cc).
std::string InspectVmText(const v1::InspectVMResponse& resp);

// Streams a VM's output to stdout until the stream ends (with `follow`, until the VM ends);
// returns the exit status. Shared by `logs` and `run` (which follows after acquiring).
int StreamLogs(Client& client, const std::string& vm_id, bool follow);

// Runs a command in a VM over the Exec stream, copying output (and stdin when interactive);
// returns the guest command's exit status (128+signal when killed) or smctl's error status.
struct ExecParams {
  std::string vm;
  std::vector<std::string> argv;
  std::vector<std::string> env;
  bool interactive = false;
  bool tty = false;
  uint32_t timeout_ms = 0;
};
int ExecInVm(Client& client, const ExecParams& params);

// Milliseconds since the Unix epoch, for "created ... ago" columns.
int64_t NowUnixMs();

}  // namespace supermachine::cli
