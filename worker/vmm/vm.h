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
#include "worker/devices/virtio/net/net.h"
#include "worker/kvm/kvm.h"
#include "worker/kvm/vcpu_fd.h"
#include "worker/kvm/vm_fd.h"
#include "worker/memory/guest_memory.h"
#include "proto/snapshot.pb.h"
#include "worker/vmm/control_socket.h"
#include "worker/vmm/launch_config.h"
#include "worker/vmm/rotating_log.h"
#include "worker/vmm/vcpu.h"
#include "worker/vmm/vcpu_pause.h"

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
  // Unix socket for pause/resume/snapshot commands (control_socket.h); empty: none.
  std::string control_socket_path;
  // Restore only: a vCPU count the caller insists on (refused if the snapshot's differs).
  std::optional<uint32_t> restore_vcpus;
};

class Vm {
 public:
  static absl::StatusOr<std::unique_ptr<Vm>> Create(VmOptions options);
  // Builds the VM from the snapshot directory `dir` instead of a kernel (vm_snapshot.cc):
  // options.config supplies only host-side choices (serial, vsock socket, disk paths).
  static absl::StatusOr<std::unique_ptr<Vm>> Restore(VmOptions options, const std::string& dir);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  // Runs the guest to its end; the VmEnd carries the process exit code (exit_codes.h).
  VmEnd Run();
  // Thread-safe: ends Run() with kExitStopped.
  void RequestStop();

  // Snapshot support (vm_snapshot.cc); call from the event-loop thread while Run() runs (the
  // control socket does), so no device is processing queues meanwhile.
  absl::Status Pause();
  absl::Status Resume();
  // Pauses if needed and writes `dir`/state and `dir`/memory; the VM stays paused. Returns a
  // one-line summary.
  absl::StatusOr<std::string> Snapshot(const std::string& dir);

  const std::string& kernel_cmdline() const { return cmdline_; }
  // The effective launch config (after a restore: the snapshot's RAM size and vCPU count), for
  // the worker's cgroup limits (worker/jail/cgroup.h).
  const LaunchConfig& config() const { return options_.config; }
  const std::string& boot_summary() const { return summary_; }
  // virtio-net counters and identity ("mac=.. egress=.. rx_packets=.. ..."), "" without --net.
  std::string NetStatsLine();
  // virtio-balloon counters ("reported_ranges=.. reported_bytes=.. ..."), "" without --balloon.
  std::string BalloonStatsLine();

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
  void KickVcpus();
  // The event-loop pieces both Build and BuildFromSnapshot end with.
  absl::Status PrepareRun();
  absl::Status BuildFromSnapshot(const ::supermachine::snapshot::v1::SnapshotState& state,
                                 const std::string& dir);
  absl::Status StartControlSocket();
  std::string HandleControl(absl::string_view line);
  std::vector<kvm_run*> VcpuRuns() const;
  // --ksm: advises guest RAM mergeable (boot and restore); never fails the VM, only says in
  // worker.log why merging will not happen.
  void ApplyKsm() const;
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
  RotatingLog* serial_log_ = nullptr;  // serial_out_ for file:PATH (owned there), else null.
  std::unique_ptr<devices::IrqLine> serial_irq_;
  std::unique_ptr<devices::Serial> serial_;
  devices::I8042 i8042_;
  std::vector<VirtioSlot> virtio_;
  devices::virtio::net::VirtioNet* net_ = nullptr;  // In virtio_ (owned by its transport).
  // The balloon's transport in virtio_, or null; its counters are read under the transport's
  // lock (a queue may be processed on a vCPU thread when ioeventfds are unavailable).
  devices::virtio::MmioTransport* balloon_ = nullptr;

  std::vector<std::unique_ptr<kvm::VcpuFd>> vcpus_;
  std::vector<kvm::CpuidList> vcpu_cpuid_;  // What each vCPU got with KVM_SET_CPUID2.
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_vcpus_{false};
  PauseGate pause_;
  std::unique_ptr<ControlSocket> control_;
  std::atomic<bool> first_run_reported_{false};
  base::UniqueFd end_event_;  // eventfd: a vCPU thread or RequestStop ended the VM.
  std::mutex end_mu_;
  std::optional<VmEnd> end_ ABSL_GUARDED_BY(end_mu_);
};

}  // namespace supermachine::vmm
