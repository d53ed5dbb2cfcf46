// File: main.cc
// supermachine-worker: parse the launch config, set up signals, build the VM, run it, exit
// with a code that says how the VM ended (worker/vmm/exit_codes.h, docs/worker.md).
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "worker/base/unique_fd.h"
#include "worker/jail/cgroup.h"
#include "worker/jail/flags.h"
#include "worker/jail/jail.h"
#include "worker/jail/pid_namespace.h"
#include "worker/jail/seccomp_filter.h"
#include "worker/vmm/exit_codes.h"
#include "worker/vmm/launch_config.h"
#include "worker/vmm/vm.h"

namespace {

using supermachine::vmm::kExitBadInput;

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "supermachine-worker: error: %s\n", std::string(status.message()).c_str());
  return kExitBadInput;
}

// The jail holds what the worker still reaches by path after setup: the directories of its
// vsock socket (guest-initiated connections go to PATH_<port>) and control socket (writable;
// `snapshot DIR` must name a directory inside one of them or a --jail-share), the kernel file
// when a snapshot will have to hash it, and /dev/urandom. Everything else it needs is already
// open.
supermachine::jail::JailOptions JailFor(const supermachine::jail::SandboxFlags& flags,
                                        const supermachine::vmm::CommandLine& cli) {
  supermachine::jail::JailOptions o{.jail_dir = flags.jail_dir, .uid = flags.uid, .gid = flags.gid};
  std::vector<std::string> dirs;
  for (const std::string& path : {cli.config.vsock.path, cli.control_socket}) {
    if (path.empty()) {
      continue;
    }
    std::string dir = std::filesystem::absolute(path).parent_path().string();
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) {
      dirs.push_back(dir);
      o.binds.push_back({.path = dir, .read_only = false});
    }
  }
  // The first snapshot of a booted VM hashes its kernel file (unless --kernel-sha256 was given).
  if (!cli.config.kernel.empty() && cli.config.kernel_sha256.empty()) {
    o.binds.push_back(
        {.path = std::filesystem::absolute(cli.config.kernel).string(), .read_only = true});
  }
  // What the caller shares on purpose (--jail-share), e.g. a bake's snapshot directory.
  for (const std::string& dir : flags.jail_shares) {
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) {
      dirs.push_back(dir);
      o.binds.push_back({.path = dir, .read_only = false});
    }
  }
  o.binds.push_back({.path = "/dev/urandom", .read_only = true});
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const absl::Time start = absl::Now();
  // Sandbox flags first (worker/jail/flags.h); the launch config parser gets the rest.
  std::vector<std::string> args(argv, argv + argc);
  auto sandbox = supermachine::jail::ExtractSandboxFlags(args, getenv(supermachine::jail::kSeccompEnv));
  if (!sandbox.ok()) {
    return Fail(sandbox.status());
  }
  std::vector<const char*> rest;
  for (const std::string& a : args) {
    rest.push_back(a.c_str());
  }
  auto cli = supermachine::vmm::ParseCommandLine(static_cast<int>(rest.size()), rest.data());
  if (!cli.ok()) {
    return Fail(cli.status());
  }
  if (cli->help) {
    std::fputs(cli->help_text.c_str(), stdout);
    std::fputs(supermachine::jail::SandboxFlagsHelp(), stdout);
    return 0;
  }
  // Into the VM's cgroup before guest RAM or any thread exists, so all of it is accounted.
  // Its limits follow once the VM's size is known (after a restore: from the snapshot).
  if (!sandbox->cgroup.empty()) {
    if (absl::Status st = supermachine::jail::CreateWorkerCgroup(sandbox->cgroup, {});
        !st.ok()) {
      return Fail(st);
    }
    if (absl::Status st = supermachine::jail::JoinCgroup(sandbox->cgroup, getpid()); !st.ok()) {
      return Fail(st);
    }
  }
  // A jailed worker runs as PID 1 of its own PID namespace below a keeper process, the pid the
  // daemon spawned and tracks (worker/jail/pid_namespace.h). Forked before anything of the VM
  // exists, so the keeper holds none of it.
  if (!sandbox->jail_dir.empty()) {
    if (absl::Status st = supermachine::jail::EnterNewPidNamespace(); !st.ok()) {
      return Fail(st);
    }
  }
  // Host stop signals are taken synchronously through a signalfd by the event loop. They are
  // blocked here, before any thread exists, so every vCPU thread inherits the mask and a
  // SIGTERM can never land on a vCPU thread instead.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  if (pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr) != 0) {
    return Fail(absl::InternalError("block stop signals"));
  }
  supermachine::base::UniqueFd signal_fd(signalfd(-1, &stop_signals, SFD_CLOEXEC));
  if (!signal_fd.valid()) {
    return Fail(absl::InternalError("signalfd"));
  }
  // A guest console on a closed pipe must not kill the worker.
  signal(SIGPIPE, SIG_IGN);

  supermachine::vmm::VmOptions options;
  options.config = cli->config;
  options.stop_signal_fd = signal_fd.get();
  if (options.config.serial.kind == supermachine::vmm::SerialKind::kStdout &&
      isatty(STDIN_FILENO)) {
    options.serial_input_fd = STDIN_FILENO;
  }
  if (getenv("SUPERMACHINE_WORKER_TIMING") != nullptr) {
    options.report_timing_from = start;
  }
  options.control_socket_path = cli->control_socket;
  if (cli->vcpus_given) {
    options.restore_vcpus = cli->config.vcpus;
  }
  auto vm = cli->restore_dir.empty()
                ? supermachine::vmm::Vm::Create(std::move(options))
                : supermachine::vmm::Vm::Restore(std::move(options), cli->restore_dir);
  if (!vm.ok()) {
    return Fail(vm.status());
  }
  if (!sandbox->cgroup.empty()) {
    const supermachine::vmm::LaunchConfig& c = (*vm)->config();
    if (absl::Status st = supermachine::jail::CreateWorkerCgroup(
            sandbox->cgroup, supermachine::jail::LimitsForVm(c.mem_mib, c.vcpus));
        !st.ok()) {
      return Fail(st);
    }
  }
  // Setup is done (files open, passt spawned, sockets listening) and no vCPU thread exists
  // yet: the jail, then the seccomp filter, then the first KVM_RUN (in Run). docs/seccomp.md.
  if (!sandbox->jail_dir.empty()) {
    if (absl::Status st = supermachine::jail::EnterJail(JailFor(*sandbox, *cli)); !st.ok()) {
      return Fail(st);
    }
  }
  if (absl::Status st = supermachine::jail::InstallWorkerSeccomp(sandbox->seccomp); !st.ok()) {
    return Fail(st);
  }
  supermachine::vmm::VmEnd end = (*vm)->Run();
  std::fprintf(stderr, "supermachine-worker: %s (exit %d)\n", end.message.c_str(), end.exit_code);
  return end.exit_code;
}
