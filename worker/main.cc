// File: main.cc
// supermachine-worker: parse the launch config, set up signals, build the VM, run it, exit
// with a code that says how the VM ended (worker/vmm/exit_codes.h, docs/worker.md).
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>

#include "absl/time/clock.h"
#include "worker/base/unique_fd.h"
#include "worker/vmm/exit_codes.h"
#include "worker/vmm/launch_config.h"
#include "worker/vmm/vm.h"

namespace {

using supermachine::vmm::kExitBadInput;

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "supermachine-worker: error: %s\n", std::string(status.message()).c_str());
  return kExitBadInput;
}

}  // namespace

int main(int argc, char** argv) {
  const absl::Time start = absl::Now();
  auto cli = supermachine::vmm::ParseCommandLine(argc, argv);
  if (!cli.ok()) {
    return Fail(cli.status());
  }
  if (cli->help) {
    std::fputs(cli->help_text.c_str(), stdout);
    return 0;
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
  supermachine::vmm::VmEnd end = (*vm)->Run();
  std::fprintf(stderr, "supermachine-worker: %s (exit %d)\n", end.message.c_str(), end.exit_code);
  return end.exit_code;
}
