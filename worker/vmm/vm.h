// File: vm.h
// Vm: one microVM — builds KVM VM, guest memory, kernel, boot structures, devices and vCPUs
// from a LaunchConfig (every failure is reported before any vCPU runs), then runs it: one
// thread per vCPU plus the calling thread as the event loop (ioeventfds, serial input, host
// signals). After Firecracker src/vmm/src/builder.rs + vstate.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/base/unique_fd.h"
#include "worker/devices/irq.h"
#include "worker/devices/legacy/i8042.h"
#include "worker/devices/legacy/serial.h"
#include "worker/devices/virtio/mmio.h"
#include "worker/kvm/kvm.h"
#include "worker/kvm/vcpu_fd.h"
#include "worker/kvm/vm_fd.h"
#include "worker/memory/guest_memory.h"
#include "worker/vmm/launch_config.h"
#include "worker/vmm/vcpu.h"

namespace supermachine::vmm {

struct VmOptions {
  LaunchConfig config;
  // Readable when the host asks us to stop (a signalfd for SIGTERM/SIGINT/SIGHUP); -1: none.
  // The caller blocks those signals in every thread before Create.
  int stop_signal_fd = -1;
  // Host bytes for the guest's COM1 input; -1: none. Not owned.
  int serial_input_fd = -1;
  // When set, Run() prints to stderr the time from this instant to the first KVM_RUN and the
  // worker's own memory use at exit (for tests/bench/worker).
  std::optional<absl::Time> report_timing_from;
  std::string kvm_path = "/dev/kvm";
};

class Vm {
 public:
  static absl::StatusOr<std::unique_ptr<Vm>> Create(VmOptions options);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  // Runs the guest to its end; the VmEnd carries the process exit code (exit_codes.h).
  VmEnd Run();
  // Thread-safe: ends Run() with kExitStopped.
  void RequestStop();

  const std::string& kernel_cmdline() const { return cmdline_; }
  const std::string& boot_summary() const { return summary_; }

 private:
  struct VirtioSlot {
    uint64_t base = 0;
    uint32_t gsi = 0;
    std::unique_ptr<devices::IrqLine> irq;
    std::unique_ptr<devices::virtio::MmioTransport> transport;
    std::vector<base::UniqueFd> ioeventfds;  // One per queue; empty on fallback.
  };

  Vm(VmOptions options, kvm::Kvm kvm);
  absl::Status Build();
  absl::Status SetupDevices();
  absl::StatusOr<std::unique_ptr<devices::IrqLine>> MakeIrq(uint32_t gsi);
  std::optional<VmEnd> HandlePio(uint16_t port, bool is_write, uint8_t* data, uint32_t size);
  void HandleMmio(uint64_t addr, bool is_write, uint8_t* data, uint32_t size);
  void Finish(VmEnd end);
  void StopVcpus();
  void ReportMemoryUse() const;
  // With report_timing_from: remembers when setup phase `name` ended (printed by Run()).
  void MarkPhase(const char* name);

  VmOptions options_;
  kvm::Kvm kvm_;
  std::unique_ptr<kvm::VmFd> vm_;
  std::optional<memory::GuestMemory> mem_;
  std::string cmdline_;
  std::string summary_;
  std::vector<std::pair<const char*, absl::Duration>> phases_;

  base::UniqueFd serial_file_;
  std::unique_ptr<devices::SerialOutput> serial_out_;
  std::unique_ptr<devices::IrqLine> serial_irq_;
  std::unique_ptr<devices::Serial> serial_;
  devices::I8042 i8042_;
  std::vector<VirtioSlot> virtio_;

  std::vector<std::unique_ptr<kvm::VcpuFd>> vcpus_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_vcpus_{false};
  std::atomic<bool> first_run_reported_{false};
  base::UniqueFd end_event_;  // eventfd: a vCPU thread or RequestStop ended the VM.
  std::mutex end_mu_;
  std::optional<VmEnd> end_ ABSL_GUARDED_BY(end_mu_);
};

}  // namespace supermachine::vmm
