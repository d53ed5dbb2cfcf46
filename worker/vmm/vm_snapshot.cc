// File: vm_snapshot.cc
// The Vm's snapshot side: pause/resume of all vCPUs, writing a snapshot directory (state file
// + sparse memory file), the control-socket commands, and building a Vm from a snapshot
// instead of a kernel. Construction order on restore mirrors Vm::Build (vm.cc) where KVM needs
// it; the state is applied in the order worker/snapshot documents. docs/snapshot.md has the
// user's view.
#include <errno.h>
#include <sys/stat.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "worker/arch/x86_64/cpuid.h"
#include "worker/arch/x86_64/layout.h"
#include "worker/base/status_macros.h"
#include "worker/devices/virtio/balloon.h"
#include "worker/devices/virtio/block.h"
#include "worker/devices/virtio/net/net.h"
#include "worker/devices/virtio/vsock/vsock.h"
#include "worker/net/egress_policy.h"
#include "worker/snapshot/compat.h"
#include "worker/snapshot/cpu_identity.h"
#include "worker/snapshot/device_state.h"
#include "worker/snapshot/guest_identity.h"
#include "worker/snapshot/memory_file.h"
#include "worker/snapshot/state_file.h"
#include "worker/snapshot/vcpu_state.h"
#include "worker/snapshot/vm_state.h"
#include "worker/vmm/exit_codes.h"
#include "worker/vmm/vm.h"

namespace supermachine::vmm {
namespace {

namespace v1 = ::supermachine::snapshot::v1;

// A snapshot from before VsockDeviceState.next_host_port does not say which host ports its
// worker used; that worker started at kFirstHostPort and made far fewer connections than this.
constexpr uint32_t kLegacyPortSkip = 1u << 24;

// Where the restored muxer's host-initiated ports start (see VsockDeviceState.next_host_port).
uint32_t FirstHostPortAfter(const v1::VsockDeviceState& saved) {
  const uint32_t first = devices::virtio::vsock::kFirstHostPort;
  if (saved.next_host_port() >= first) {
    return saved.next_host_port();
  }
  // 0 (older snapshot) or a value below the range (a damaged state): skip the old worker's.
  return first + kLegacyPortSkip;
}

#ifndef SM_WORKER_VERSION
#define SM_WORKER_VERSION "unknown"
#endif
constexpr char kWorkerVersion[] = "supermachine-worker " SM_WORKER_VERSION;
constexpr char kStateFileName[] = "state";
constexpr char kMemoryFileName[] = "memory";
// A vCPU leaves KVM_RUN within microseconds of its kick; this only bounds a wedged host.
constexpr absl::Duration kPauseTimeout = absl::Seconds(5);

arch::CpuidOptions CpuidOptionsFor(const kvm::Kvm& kvm, uint32_t id, uint32_t count) {
  return arch::CpuidOptions{.vcpu_id = id,
                            .vcpu_count = count,
                            .tsc_deadline = kvm.CheckExtension(KVM_CAP_TSC_DEADLINE_TIMER) > 0,
                            .brand = arch::HostBrandString()};
}

std::string MiB(uint64_t bytes) {
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

}  // namespace

std::vector<kvm_run*> Vm::VcpuRuns() const {
  std::vector<kvm_run*> runs;
  for (const auto& v : vcpus_) {
    runs.push_back(v->run());
  }
  return runs;
}

absl::Status Vm::Pause() {
  if (threads_.empty()) {
    return absl::FailedPreconditionError("the VM is not running");
  }
  pause_.RequestPause(VcpuRuns());
  KickVcpus();
  return pause_.WaitParked(threads_.size(), kPauseTimeout);
}

absl::Status Vm::Resume() {
  if (!pause_.paused()) {
    return absl::FailedPreconditionError("the VM is not paused");
  }
  pause_.Release();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Vm::Snapshot(const std::string& dir) {
  const absl::Time start = absl::Now();
  if (!pause_.paused()) {
    SM_RETURN_IF_ERROR(base::Annotate(Pause(), "pause for snapshot"));
  }
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return base::ErrnoToStatus(errno, absl::StrCat("create snapshot directory ", dir));
  }
  const LaunchConfig& c = options_.config;
  v1::SnapshotState state;
  state.set_worker_version(kWorkerVersion);
  state.set_created_unix_nanos(absl::ToUnixNanos(absl::Now()));
  // Guest identity. The kernel is hashed once per worker (the file may be gone later, and a
  // second snapshot should not pay again); a restored worker carries the saved one.
  if (options_.config.kernel_sha256.empty()) {
    SM_ASSIGN_OR_RETURN(options_.config.kernel_sha256, snapshot::Sha256OfFile(c.kernel));
  }
  state.mutable_guest()->set_kernel_path(c.kernel);
  state.mutable_guest()->set_kernel_sha256(c.kernel_sha256);
  state.mutable_guest()->set_agent_version(c.agent_version);
  state.mutable_guest()->set_cmdline(cmdline_);
  state.set_vcpu_count(static_cast<uint32_t>(vcpus_.size()));
  state.set_mem_mib(c.mem_mib);

  // vCPUs (all parked), then the VM-wide chips.
  *state.mutable_cpu() = snapshot::CpuIdentityFromCpuid(vcpu_cpuid_.at(0));
  snapshot::VcpuSaveOptions save_options;
  SM_ASSIGN_OR_RETURN(save_options.msrs, snapshot::SaveableMsrs(kvm_, *vcpus_[0]));
  const int xsave2 = vm_->CheckExtension(KVM_CAP_XSAVE2);
  save_options.xsave2_size = xsave2 > 0 ? static_cast<size_t>(xsave2) : 0;
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    save_options.cpuid = &vcpu_cpuid_.at(i);
    SM_ASSIGN_OR_RETURN(*state.add_vcpus(), snapshot::SaveVcpu(*vcpus_[i], save_options));
  }
  SM_ASSIGN_OR_RETURN(*state.mutable_vm(), snapshot::SaveVmState(*vm_));

  // Devices. This runs on the event-loop thread, so no queue is being processed meanwhile.
  size_t disk = 0;
  for (VirtioSlot& s : virtio_) {
    devices::virtio::VirtioDevice& dev = s.transport->device();
    v1::DeviceState* d = state.add_devices();
    d->set_id(absl::StrFormat("virtio-mmio@0x%x", s.base));
    d->set_mmio_base(s.base);
    d->set_gsi(s.gsi);
    *d->mutable_transport() =
        snapshot::TransportToProto(s.transport->SaveState(), dev.device_type(), dev.features());
    switch (dev.device_type()) {
      case devices::virtio::kDeviceTypeBlock: {
        const DiskConfig& dc = c.disks.at(disk);
        v1::BlockDeviceState* b = d->mutable_block();
        b->set_path(dc.path);
        b->set_read_only(dc.read_only);
        b->set_id(dc.id.empty() ? absl::StrCat("disk", disk) : dc.id);
        b->set_capacity_sectors(
            static_cast<devices::virtio::Block&>(dev).state().capacity_sectors);
        ++disk;
        break;
      }
      case devices::virtio::kDeviceTypeVsock:
        d->mutable_vsock()->set_guest_cid(c.vsock.guest_cid);
        d->mutable_vsock()->set_next_host_port(
            static_cast<devices::virtio::vsock::Vsock&>(dev).muxer().next_host_port());
        break;
      case devices::virtio::kDeviceTypeRng:
        d->mutable_rng();
        break;
      case devices::virtio::kDeviceTypeBalloon:
        *d->mutable_balloon() = snapshot::BalloonToProto(
            static_cast<devices::virtio::Balloon&>(dev).state());
        break;
      case devices::virtio::net::kDeviceTypeNet:
        // The policy only: MAC and passt are per worker (a restore gets new ones), and the
        // device holds no guest buffer between calls, so the queues above are all its state.
        d->mutable_net()->set_egress(::supermachine::net::ToString(
            static_cast<devices::virtio::net::VirtioNet&>(dev).config().filter.policy));
        break;
      default:
        return absl::UnimplementedError(
            absl::StrCat("snapshot of virtio device type ", dev.device_type()));
    }
  }
  *state.mutable_serial() = snapshot::SerialToProto(serial_->SaveState());

  // RAM first, state last: a directory with a state file is a complete snapshot.
  const std::string memory_path = absl::StrCat(dir, "/", kMemoryFileName);
  SM_ASSIGN_OR_RETURN(snapshot::MemoryFileStats stats,
                      snapshot::WriteMemoryFile(*mem_, memory_path, state.mutable_memory()));
  SM_RETURN_IF_ERROR(
      snapshot::WriteStateFile(absl::StrCat(dir, "/", kStateFileName), state));
  return absl::StrFormat("snapshot %s: %s of %s RAM written, %d ms", dir, MiB(stats.data_bytes),
                         MiB(stats.file_size), absl::ToInt64Milliseconds(absl::Now() - start));
}

std::string Vm::HandleControl(absl::string_view line) {
  absl::StatusOr<ControlCommand> cmd = ParseControlCommand(line);
  if (!cmd.ok()) {
    return absl::StrCat("ERR ", cmd.status().message());
  }
  switch (cmd->verb) {
    case ControlVerb::kPause: {
      absl::Status st = pause_.paused() ? absl::OkStatus() : Pause();
      return st.ok() ? "OK paused" : absl::StrCat("ERR ", st.message());
    }
    case ControlVerb::kResume: {
      absl::Status st = Resume();
      return st.ok() ? "OK resumed" : absl::StrCat("ERR ", st.message());
    }
    case ControlVerb::kSnapshot: {
      absl::StatusOr<std::string> done = Snapshot(cmd->argument);
      return done.ok() ? absl::StrCat("OK ", *done) : absl::StrCat("ERR ", done.status().message());
    }
    case ControlVerb::kExit:
      Finish({.exit_code = kExitStopped, .message = "stopped by the control socket"});
      return "OK exiting";
    case ControlVerb::kStats: {
      const std::string net = NetStatsLine();  // vm.cc; docs/networking.md "Metrics".
      return net.empty() ? "OK net=none" : absl::StrCat("OK net ", net);
    }
    case ControlVerb::kBalloon: {
      const std::string balloon = BalloonStatsLine();  // docs/balloon.md.
      return balloon.empty() ? "OK balloon=none" : absl::StrCat("OK balloon ", balloon);
    }
    case ControlVerb::kBalloonTarget: {
      // docs/balloon.md "Setting a target"; the daemon's idle policy drives it.
      if (balloon_ == nullptr) {
        return "ERR this VM has no balloon device (bake with worker_balloon)";
      }
      absl::Status st = devices::virtio::SetBalloonTarget(*balloon_, cmd->pages);
      return st.ok() ? absl::StrCat("OK balloon-target pages=", cmd->pages)
                     : absl::StrCat("ERR ", st.message());
    }
  }
  return "ERR unreachable";
}

absl::Status Vm::StartControlSocket() {
  if (options_.control_socket_path.empty()) {
    return absl::OkStatus();
  }
  SM_ASSIGN_OR_RETURN(control_, ControlSocket::Listen(options_.control_socket_path,
                                                      [this](absl::string_view line) {
                                                        return HandleControl(line);
                                                      }));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Vm>> Vm::Restore(VmOptions options, const std::string& dir) {
  SM_ASSIGN_OR_RETURN(kvm::Kvm kvm, kvm::Kvm::Open(options.kvm_path));
  std::unique_ptr<Vm> vm(new Vm(std::move(options), std::move(kvm)));
  vm->MarkPhase("open_kvm");
  const std::string state_path = absl::StrCat(dir, "/", kStateFileName);
  absl::StatusOr<v1::SnapshotState> state = snapshot::ReadStateFile(state_path);
  if (!state.ok()) {
    return base::Annotate(state.status(), absl::StrCat("restore ", dir));
  }
  vm->MarkPhase("read_state");
  // The host's CPU as we would show it to a guest, for the compatibility check.
  SM_ASSIGN_OR_RETURN(kvm::CpuidList supported, vm->kvm_.SupportedCpuid());
  kvm::CpuidList host_cpuid = supported.Clone();
  arch::NormalizeCpuid(CpuidOptionsFor(vm->kvm_, 0, state->vcpu_count()), &host_cpuid);
  SM_RETURN_IF_ERROR(base::Annotate(
      snapshot::CheckRestorable(
          *state, {.host_cpu = snapshot::CpuIdentityFromCpuid(host_cpuid),
                   .vcpu_count = vm->options_.restore_vcpus,
                   .guest = {.kernel_sha256 = vm->options_.config.kernel_sha256,
                             .agent_version = vm->options_.config.agent_version}}),
      absl::StrCat("restore ", dir)));
  vm->MarkPhase("check");

  // The launch config the devices are re-created from: the snapshot's, with the caller's
  // host-side choices (serial, vsock socket path, disk paths when given).
  LaunchConfig& c = vm->options_.config;
  c.mem_mib = state->mem_mib();
  c.vcpus = state->vcpu_count();
  c.kernel = state->guest().kernel_path();
  c.kernel_sha256 = state->guest().kernel_sha256();
  c.agent_version = state->guest().agent_version();
  c.rng = false;
  // The snapshot decides (a caller's --balloon neither adds nor removes one).
  c.balloon = false;
  std::vector<DiskConfig> saved_disks;
  bool has_vsock = false;
  bool has_net = false;
  std::string saved_egress;
  for (const v1::DeviceState& d : state->devices()) {
    if (d.has_block()) {
      saved_disks.push_back(
          {.path = d.block().path(), .read_only = d.block().read_only(), .id = d.block().id()});
    } else if (d.has_rng()) {
      c.rng = true;
    } else if (d.has_balloon()) {
      c.balloon = true;
    } else if (d.has_vsock()) {
      has_vsock = true;
      c.vsock.guest_cid = static_cast<uint32_t>(d.vsock().guest_cid());
      c.vsock.first_host_port = FirstHostPortAfter(d.vsock());
    } else if (d.has_net()) {
      has_net = true;
      saved_egress = d.net().egress();
    }
  }
  if (c.disks.empty()) {
    c.disks = saved_disks;
  } else if (c.disks.size() != saved_disks.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "restore ", dir, ": the snapshot has ", saved_disks.size(), " disks, ", c.disks.size(),
        " were given; pass one --disk per saved disk (in order) or none to reuse the saved paths"));
  }
  if (has_vsock && c.vsock.path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "restore ", dir, ": the snapshot has a vsock device; pass --vsock PATH for its host "
        "socket"));
  }
  if (!has_vsock) {
    c.vsock.path.clear();
  }
  // Network: the saved egress policy unless the caller's --net names one; a fresh random MAC
  // (unless the caller's --net names one) and a new passt per restored worker, so clones of
  // one snapshot never share a MAC. The guest agent rebinds virtio_net on `Restored` to pick
  // the new MAC up (docs/networking.md "Snapshots").
  if (has_net) {
    c.net.enabled = true;
    if (c.net.egress.empty()) {
      c.net.egress = saved_egress;
    }
  } else if (c.net.enabled) {
    return absl::InvalidArgumentError(absl::StrCat(
        "restore ", dir, ": the snapshot has no network device and a restore cannot add one; "
        "drop --net or snapshot a VM booted with it"));
  }
  SM_RETURN_IF_ERROR(
      base::Annotate(vm->BuildFromSnapshot(*state, dir), absl::StrCat("restore ", dir)));
  return vm;
}

absl::Status Vm::BuildFromSnapshot(const v1::SnapshotState& state, const std::string& dir) {
  SM_ASSIGN_OR_RETURN(int mmap_size, kvm_.VcpuMmapSize());
  SM_ASSIGN_OR_RETURN(base::UniqueFd vm_fd, kvm_.CreateVm());
  vm_ = std::make_unique<kvm::VmFd>(std::move(vm_fd));
  // The same VM-wide order as Vm::Build: TSS, irqchip (before any vCPU), PIT.
  SM_RETURN_IF_ERROR(vm_->SetTssAddress(arch::kKvmTssAddr));
  SM_RETURN_IF_ERROR(vm_->CreateIrqchip());
  SM_RETURN_IF_ERROR(vm_->CreatePit2());
  MarkPhase("create_vm");

  // RAM: the memory file mapped privately; nothing is read until the guest touches it.
  SM_ASSIGN_OR_RETURN(memory::GuestMemory mem, snapshot::MapMemoryFile(dir, state.memory()));
  mem_.emplace(std::move(mem));
  for (size_t i = 0; i < mem_->regions().size(); ++i) {
    const memory::Region& r = mem_->regions()[i];
    SM_RETURN_IF_ERROR(
        vm_->SetUserMemoryRegion(static_cast<uint32_t>(i), r.guest_base, r.size, r.host()));
  }
  ApplyKsm();  // --ksm: the private RAM mapping is what KSM can merge.
  MarkPhase("map_memory");


  // Devices, re-created from the config Restore derived (their irqfds need only the
  // irqchip); their saved state is applied after the chips, below.
  SM_RETURN_IF_ERROR(SetupDevices());
  if (virtio_.size() != static_cast<size_t>(state.devices_size())) {
    return absl::DataLossError(absl::StrCat("snapshot has ", state.devices_size(),
                                            " virtio devices, the restored VM ", virtio_.size()));
  }
  MarkPhase("create_devices");

  // vCPUs, each in the documented order (snapshot::RestoreVcpu), then the VM-wide chips: the
  // LAPICs must exist and be restored before the IOAPIC routes into them.
  for (uint32_t id = 0; id < state.vcpu_count(); ++id) {
    SM_ASSIGN_OR_RETURN(base::UniqueFd fd, vm_->CreateVcpu(id));
    SM_ASSIGN_OR_RETURN(kvm::VcpuFd vcpu, kvm::VcpuFd::Create(std::move(fd), id, mmap_size));
    auto owned = std::make_unique<kvm::VcpuFd>(std::move(vcpu));
    SM_RETURN_IF_ERROR(snapshot::RestoreVcpu(*owned, state.vcpus(static_cast<int>(id))));
    vcpus_.push_back(std::move(owned));
    vcpu_cpuid_.push_back(snapshot::CpuidFromState(state.vcpus(static_cast<int>(id))));
  }
  SM_RETURN_IF_ERROR(snapshot::RestoreVmState(*vm_, state.vm()));
  // The guest was stopped for as long as the snapshot sat on disk: without this its
  // soft-lockup watchdog sees the jump and complains.
  for (const auto& v : vcpus_) {
    SM_RETURN_IF_ERROR(v->KvmclockCtrl());
  }
  MarkPhase("vcpus");
  // Device state last: re-raising a pending device interrupt before KVM_SET_IRQCHIP and
  // KVM_SET_LAPIC would be overwritten by them, so it must come after the chips.
  for (size_t i = 0; i < virtio_.size(); ++i) {
    VirtioSlot& s = virtio_[i];
    const v1::DeviceState& saved = state.devices(static_cast<int>(i));
    devices::virtio::VirtioDevice& dev = s.transport->device();
    if (saved.mmio_base() != s.base) {
      return absl::DataLossError(absl::StrFormat("device %s: saved at 0x%x, re-created at 0x%x",
                                                 saved.id(), saved.mmio_base(), s.base));
    }
    if (saved.has_block() &&
        static_cast<devices::virtio::Block&>(dev).state().capacity_sectors !=
            saved.block().capacity_sectors()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "disk %s: %d sectors now, %d when the snapshot was taken; the guest's file system "
          "would not match its disk",
          saved.block().path(), static_cast<devices::virtio::Block&>(dev).state().capacity_sectors,
          saved.block().capacity_sectors()));
    }
    SM_ASSIGN_OR_RETURN(devices::virtio::MmioState want,
                        snapshot::TransportFromProto(saved.transport(), dev.device_type(),
                                                     dev.features(), s.transport->num_queues()));
    SM_RETURN_IF_ERROR(base::Annotate(s.transport->RestoreState(want),
                                      "the saved transport state cannot be re-established"));
    if (saved.has_balloon()) {
      const devices::virtio::BalloonState b = snapshot::BalloonFromProto(saved.balloon());
      static_cast<devices::virtio::Balloon&>(dev).RestoreConfig(b.num_pages, b.actual);
    }
    if (saved.has_vsock() && (want.device_status & devices::virtio::status::kDriverOk) != 0) {
      // Connections are not saved: tell the guest its transport was reset, so it drops them
      // and the host connects anew.
      SM_RETURN_IF_ERROR(s.transport->WithDevice(
          [](devices::virtio::VirtioDevice& d, absl::Span<devices::virtio::Queue> queues,
             const memory::GuestMemory& m) -> absl::StatusOr<bool> {
            return static_cast<devices::virtio::vsock::Vsock&>(d).ResetTransport(queues, m);
          }));
    }
    // A notification the old worker had not read from its ioeventfd yet is lost with it: look
    // at every ready queue once, as after a kick. A queue with nothing new costs one read.
    if ((want.device_status & devices::virtio::status::kDriverOk) != 0) {
      for (uint32_t q = 0; q < want.queues.size(); ++q) {
        if (want.queues[q].ready) {
          s.transport->Notify(q);
        }
      }
    }
  }
  SM_ASSIGN_OR_RETURN(devices::SerialState serial, snapshot::SerialFromProto(state.serial()));
  SM_RETURN_IF_ERROR(serial_->RestoreState(serial));
  MarkPhase("devices");
  cmdline_ = state.guest().cmdline();
  SM_RETURN_IF_ERROR(PrepareRun());
  summary_ = absl::StrFormat("restored from %s, %u MiB, %u vCPU(s), %u virtio device(s)", dir,
                             state.mem_mib(), state.vcpu_count(), virtio_.size());
  return absl::OkStatus();
}

}  // namespace supermachine::vmm
