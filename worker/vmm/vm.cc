// File: vm.cc
// Vm construction (order-sensitive KVM setup) and the run/stop machinery.
#include "worker/vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/arch/x86_64/boot_params.h"
#include "worker/arch/x86_64/kernel_loader.h"
#include "worker/arch/x86_64/layout.h"
#include "worker/arch/x86_64/mptable.h"
#include "worker/arch/x86_64/regs.h"
#include "worker/base/status_macros.h"
#include "worker/devices/virtio/balloon.h"
#include "worker/devices/virtio/block.h"
#include "worker/devices/virtio/net/net.h"
#include "worker/devices/virtio/rng.h"
#include "worker/devices/virtio/vsock/vsock.h"
#include "worker/memory/ksm.h"
#include "worker/vmm/cmdline.h"
#include "worker/vmm/exit_codes.h"

namespace supermachine::vmm {
namespace {

// The signal that kicks a vCPU thread out of KVM_RUN. Its handler does nothing: the point is
// the EINTR (Firecracker vcpu.rs register_kick_signal_handler does the same).
int KickSignal() { return SIGRTMIN; }
void KickHandler(int) {}

absl::Status InstallKickHandler() {
  struct sigaction sa {};
  sa.sa_handler = KickHandler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // No SA_RESTART: KVM_RUN must return EINTR.
  if (sigaction(KickSignal(), &sa, nullptr) != 0) {
    return base::ErrnoToStatus(errno, "install vCPU kick signal handler");
  }
  return absl::OkStatus();
}

// Interrupts through an eventfd bound to the GSI with KVM_IRQFD: a write is the whole cost.
class EventFdIrq : public devices::IrqLine {
 public:
  EventFdIrq(base::UniqueFd fd, uint32_t gsi) : fd_(std::move(fd)), gsi_(gsi) {}
  absl::Status Trigger() override {
    uint64_t one = 1;
    if (write(fd_.get(), &one, sizeof(one)) != sizeof(one)) {
      return base::ErrnoToStatus(errno, "irqfd write");
    }
    return absl::OkStatus();
  }
  uint32_t gsi() const override { return gsi_; }

 private:
  base::UniqueFd fd_;
  uint32_t gsi_;
};

// Fallback without irqfd: an edge as KVM_IRQ_LINE high then low.
class PulseIrq : public devices::IrqLine {
 public:
  PulseIrq(kvm::VmFd* vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  absl::Status Trigger() override {
    SM_RETURN_IF_ERROR(vm_->IrqLine(gsi_, true));
    return vm_->IrqLine(gsi_, false);
  }
  uint32_t gsi() const override { return gsi_; }

 private:
  kvm::VmFd* vm_;
  uint32_t gsi_;
};

absl::Status RequireCap(const kvm::Kvm& kvm, int cap, const char* name) {
  if (kvm.CheckExtension(cap) <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("this KVM lacks ", name, ", which the worker needs"));
  }
  return absl::OkStatus();
}

// virtio-net with its passt and the egress filter, from the validated --net config.
absl::StatusOr<std::unique_ptr<devices::virtio::net::VirtioNet>> CreateNetDevice(
    const NetConfig& net) {
  namespace n = ::supermachine::net;
  devices::virtio::net::NetConfig nc;
  if (net.mac.empty()) {
    nc.mac = n::RandomLocalMac();
  } else {
    SM_ASSIGN_OR_RETURN(nc.mac, n::ParseMac(net.mac));
  }
  SM_ASSIGN_OR_RETURN(nc.filter.policy, n::ParseEgressPolicy(net.egress));
  SM_ASSIGN_OR_RETURN(nc.filter.resolver, n::ParseIp(n::kResolverAddr));
  SM_ASSIGN_OR_RETURN(n::PasstBackend backend, n::StartPasst({.extra_args = net.passt_args}));
  return devices::virtio::net::VirtioNet::Create(std::move(nc), std::move(backend));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Vm>> Vm::Create(VmOptions options) {
  HostLimits limits = QueryHostLimits();
  SM_RETURN_IF_ERROR(ValidateLaunchConfig(options.config, limits));
  SM_ASSIGN_OR_RETURN(kvm::Kvm kvm, kvm::Kvm::Open(options.kvm_path));
  std::unique_ptr<Vm> vm(new Vm(std::move(options), std::move(kvm)));
  vm->MarkPhase("validate+open_kvm");
  SM_RETURN_IF_ERROR(vm->Build());
  return vm;
}

Vm::Vm(VmOptions options, kvm::Kvm kvm) : options_(std::move(options)), kvm_(std::move(kvm)) {}

Vm::~Vm() { StopVcpus(); }

absl::Status Vm::Build() {
  const LaunchConfig& c = options_.config;
  SM_RETURN_IF_ERROR(RequireCap(kvm_, KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"));
  SM_RETURN_IF_ERROR(RequireCap(kvm_, KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"));
  SM_RETURN_IF_ERROR(RequireCap(kvm_, KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"));
  SM_RETURN_IF_ERROR(RequireCap(kvm_, KVM_CAP_PIT2, "KVM_CAP_PIT2"));
  SM_RETURN_IF_ERROR(RequireCap(kvm_, KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"));
  const int max_vcpus = kvm_.CheckExtension(KVM_CAP_MAX_VCPUS);
  if (max_vcpus > 0 && c.vcpus > static_cast<uint32_t>(max_vcpus)) {
    return absl::InvalidArgumentError(
        absl::StrCat(c.vcpus, " vCPUs: this KVM allows at most ", max_vcpus));
  }
  SM_ASSIGN_OR_RETURN(int mmap_size, kvm_.VcpuMmapSize());
  SM_ASSIGN_OR_RETURN(kvm::CpuidList supported_cpuid, kvm_.SupportedCpuid());
  SM_ASSIGN_OR_RETURN(base::UniqueFd vm_fd, kvm_.CreateVm());
  vm_ = std::make_unique<kvm::VmFd>(std::move(vm_fd));
  MarkPhase("create_vm");

  // VM-wide setup, in the order KVM requires:
  // 1. The TSS region (three pages Intel VMX uses for real-mode emulation) must be set before
  //    the first KVM_RUN; setting it before the vCPUs exist keeps it out of any guest path.
  SM_RETURN_IF_ERROR(vm_->SetTssAddress(arch::kKvmTssAddr));
  // 2. The in-kernel irqchip (PIC + IOAPIC + per-vCPU LAPIC) must exist before any vCPU is
  //    created, or those vCPUs get no LAPIC.
  SM_RETURN_IF_ERROR(vm_->CreateIrqchip());
  // 3. The PIT needs the irqchip to deliver IRQ0.
  SM_RETURN_IF_ERROR(vm_->CreatePit2());

  // Guest RAM, registered slot by slot.
  SM_ASSIGN_OR_RETURN(
      memory::GuestMemory mem,
      memory::GuestMemory::Create(arch::RamRegions(static_cast<uint64_t>(c.mem_mib) << 20)));
  mem_.emplace(std::move(mem));
  for (size_t i = 0; i < mem_->regions().size(); ++i) {
    const memory::Region& r = mem_->regions()[i];
    SM_RETURN_IF_ERROR(
        vm_->SetUserMemoryRegion(static_cast<uint32_t>(i), r.guest_base, r.size, r.host()));
  }
  ApplyKsm();

  MarkPhase("irqchip+memory");

  // Kernel, devices (which decide the command line), boot structures.
  SM_ASSIGN_OR_RETURN(arch::LoadedKernel kernel, arch::LoadKernel(c.kernel, *mem_, c.pvh));
  MarkPhase("load_kernel");
  SM_RETURN_IF_ERROR(SetupDevices());
  MarkPhase("devices");
  std::vector<MmioDeviceSlot> slots;
  for (const VirtioSlot& s : virtio_) {
    slots.push_back({.base = s.base, .irq = s.gsi});
  }
  // The bzImage header's cmdline_size excludes the NUL; BuildKernelCmdline counts it.
  const uint32_t cmdline_limit = kernel.cmdline_limit != 0 ? kernel.cmdline_limit + 1 : 0;
  std::string user_cmdline = c.cmdline;
  if (c.net.enabled) {
    // The guest agent configures eth0 from this (docs/networking.md "Guest addressing").
    absl::StrAppend(&user_cmdline, " sm.net=", ::supermachine::net::kGuestAddr, "/",
                    ::supermachine::net::kGuestPrefixLen, ",", ::supermachine::net::kGatewayAddr,
                    ",", ::supermachine::net::kResolverAddr);
  }
  SM_ASSIGN_OR_RETURN(cmdline_, BuildKernelCmdline(user_cmdline, slots, cmdline_limit));
  std::vector<uint8_t> cmdline_bytes(cmdline_.begin(), cmdline_.end());
  cmdline_bytes.push_back(0);
  SM_RETURN_IF_ERROR(mem_->Write(arch::kCmdlineAddr, cmdline_bytes));
  SM_RETURN_IF_ERROR(arch::WriteMpTable(*mem_, c.vcpus));
  std::vector<arch::E820Entry> e820 = arch::BuildE820(*mem_);
  uint64_t boot_info;
  arch::BootMode mode;
  if (kernel.entry_kind == arch::EntryKind::kPvh) {
    SM_RETURN_IF_ERROR(arch::WritePvhStartInfo(*mem_, arch::kCmdlineAddr, e820));
    boot_info = arch::kPvhStartInfoAddr;
    mode = arch::BootMode::kProtected32;
  } else {
    SM_ASSIGN_OR_RETURN(std::vector<uint8_t> zero_page,
                        arch::BuildZeroPage({.setup_header = kernel.setup_header,
                                             .cmdline_addr = arch::kCmdlineAddr,
                                             .cmdline_size =
                                                 static_cast<uint32_t>(cmdline_.size()),
                                             .e820 = e820}));
    SM_RETURN_IF_ERROR(mem_->Write(arch::kZeroPageAddr, zero_page));
    boot_info = arch::kZeroPageAddr;
    mode = arch::BootMode::kLong64;
  }
  SM_ASSIGN_OR_RETURN(arch::BootRegs boot_regs,
                      arch::SetupBootRegs(*mem_, mode, kernel.entry, boot_info));

  // vCPUs last: they need the irqchip (LAPIC) and the boot registers.
  for (uint32_t id = 0; id < c.vcpus; ++id) {
    SM_ASSIGN_OR_RETURN(base::UniqueFd fd, vm_->CreateVcpu(id));
    SM_ASSIGN_OR_RETURN(kvm::VcpuFd vcpu, kvm::VcpuFd::Create(std::move(fd), id, mmap_size));
    auto owned = std::make_unique<kvm::VcpuFd>(std::move(vcpu));
    const arch::CpuidOptions cpuid_options{
        .vcpu_id = id,
        .vcpu_count = c.vcpus,
        .tsc_deadline = kvm_.CheckExtension(KVM_CAP_TSC_DEADLINE_TIMER) > 0,
        .brand = arch::HostBrandString()};
    SM_RETURN_IF_ERROR(ConfigureVcpu(*owned, cpuid_options, supported_cpuid,
                                     id == 0 ? std::optional<arch::BootRegs>(boot_regs)
                                             : std::nullopt));
    vcpus_.push_back(std::move(owned));
    // The same table ConfigureVcpu set, kept for snapshots (vm_snapshot.cc).
    vcpu_cpuid_.push_back(supported_cpuid.Clone());
    arch::NormalizeCpuid(cpuid_options, &vcpu_cpuid_.back());
  }
  MarkPhase("boot_structures+vcpus");
  SM_RETURN_IF_ERROR(PrepareRun());
  summary_ = absl::StrFormat("%s, entry 0x%x, %u MiB, %u vCPU(s), %u virtio device(s)",
                             kernel.format, kernel.entry, c.mem_mib, c.vcpus, virtio_.size());
  return absl::OkStatus();
}

absl::Status Vm::PrepareRun() {
  end_event_ = base::UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!end_event_.valid()) {
    return base::ErrnoToStatus(errno, "eventfd");
  }
  SM_RETURN_IF_ERROR(InstallKickHandler());
  return StartControlSocket();
}

absl::StatusOr<std::unique_ptr<devices::IrqLine>> Vm::MakeIrq(uint32_t gsi) {
  if (kvm_.CheckExtension(KVM_CAP_IRQFD) > 0) {
    base::UniqueFd fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd.valid()) {
      return base::ErrnoToStatus(errno, "eventfd for irqfd");
    }
    if (vm_->RegisterIrqfd(fd.get(), gsi).ok()) {
      return std::unique_ptr<devices::IrqLine>(new EventFdIrq(std::move(fd), gsi));
    }
  }
  return std::unique_ptr<devices::IrqLine>(new PulseIrq(vm_.get(), gsi));
}

absl::Status Vm::SetupDevices() {
  const LaunchConfig& c = options_.config;
  // Serial console.
  switch (c.serial.kind) {
    case SerialKind::kStdout:
      serial_out_ = std::make_unique<devices::FdSerialOutput>(STDOUT_FILENO);
      break;
    case SerialKind::kFd:
      serial_out_ = std::make_unique<devices::FdSerialOutput>(c.serial.fd);
      break;
    case SerialKind::kFile: {
      // Size-bounded with one older generation (rotating_log.h); a restored VM starts a new file.
      SM_ASSIGN_OR_RETURN(std::unique_ptr<RotatingLog> log,
                          RotatingLog::Open(c.serial.path, c.serial.max_bytes));
      serial_out_ = std::move(log);
      serial_log_ = static_cast<RotatingLog*>(serial_out_.get());
      break;
    }
    case SerialKind::kNone:
      serial_file_ = base::UniqueFd(open("/dev/null", O_WRONLY | O_CLOEXEC));
      serial_out_ = std::make_unique<devices::FdSerialOutput>(serial_file_.get());
      break;
  }
  SM_ASSIGN_OR_RETURN(serial_irq_, MakeIrq(arch::kSerialIrq));
  serial_ = std::make_unique<devices::Serial>(serial_irq_.get(), serial_out_.get());

  // virtio devices: disks in order (so /dev/vda is the first --disk), then vsock, then rng.
  std::vector<std::unique_ptr<devices::virtio::VirtioDevice>> devs;
  for (size_t i = 0; i < c.disks.size(); ++i) {
    const DiskConfig& d = c.disks[i];
    SM_ASSIGN_OR_RETURN(auto block, devices::virtio::Block::Open(
                                        {.path = d.path,
                                         .read_only = d.read_only,
                                         .id = d.id.empty() ? absl::StrCat("disk", i) : d.id}));
    devs.push_back(std::move(block));
  }
  if (!c.vsock.path.empty()) {
    namespace vsock = devices::virtio::vsock;
    const uint32_t first_port =
        c.vsock.first_host_port != 0 ? c.vsock.first_host_port : vsock::kFirstHostPort;
    SM_ASSIGN_OR_RETURN(auto dev, vsock::Vsock::Create({.uds_path = c.vsock.path,
                                                        .guest_cid = c.vsock.guest_cid,
                                                        .first_host_port = first_port}));
    devs.push_back(std::move(dev));
  }
  if (c.rng) {
    devs.push_back(std::make_unique<devices::virtio::Rng>());
  }
  if (c.net.enabled) {  // Last, so adding it moves no other device's slot.
    SM_ASSIGN_OR_RETURN(auto net, CreateNetDevice(c.net));
    net_ = net.get();
    devs.push_back(std::move(net));
  }
  // After net, so a VM without a balloon keeps every slot it had before the balloon existed
  // (older snapshots restore into the same layout).
  const size_t balloon_index = devs.size();
  if (c.balloon) {
    devs.push_back(std::make_unique<devices::virtio::Balloon>());
  }
  if (devs.size() > arch::kMaxVirtioDevices) {
    return absl::InvalidArgumentError(absl::StrCat(devs.size(), " virtio devices: at most ",
                                                   arch::kMaxVirtioDevices));
  }
  const bool use_ioeventfd = kvm_.CheckExtension(KVM_CAP_IOEVENTFD) > 0;
  for (size_t i = 0; i < devs.size(); ++i) {
    MmioDeviceSlot slot = vmm::VirtioSlot(static_cast<uint32_t>(i));
    VirtioSlot s;
    s.base = slot.base;
    s.gsi = slot.irq;
    SM_ASSIGN_OR_RETURN(s.irq, MakeIrq(slot.irq));
    s.transport = std::make_unique<devices::virtio::MmioTransport>(std::move(devs[i]),
                                                                   &*mem_, s.irq.get());
    if (use_ioeventfd) {
      // Queue notifications as eventfds: the vCPU does not exit to userspace for them, and the
      // event loop processes the queue while the guest keeps running.
      for (uint32_t q = 0; q < s.transport->num_queues(); ++q) {
        base::UniqueFd fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!fd.valid() ||
            !vm_->RegisterIoeventfd(fd.get(), s.base + devices::virtio::reg::kQueueNotify, q)
                 .ok()) {
          s.ioeventfds.clear();  // Fallback: notifications arrive as MMIO exits.
          break;
        }
        s.ioeventfds.push_back(std::move(fd));
      }
    }
    if (c.balloon && i == balloon_index) {
      balloon_ = s.transport.get();
    }
    virtio_.push_back(std::move(s));
  }
  return absl::OkStatus();
}

std::optional<VmEnd> Vm::HandlePio(uint16_t port, bool is_write, uint8_t* data, uint32_t size) {
  if (port >= arch::kCom1Port && port < arch::kCom1Port + 8) {
    const auto offset = static_cast<uint8_t>(port - arch::kCom1Port);
    if (is_write) {
      serial_->Write(offset, data[0]);
    } else {
      std::memset(data, 0, size);
      data[0] = serial_->Read(offset);
    }
    return std::nullopt;
  }
  if (port == arch::kI8042DataPort || port == arch::kI8042CommandPort) {
    if (is_write) {
      if (i8042_.Write(port, data[0])) {
        return VmEnd{.exit_code = kExitI8042Reset, .message = "guest reset (i8042 port 0x64)"};
      }
    } else {
      std::memset(data, 0, size);
      data[0] = i8042_.Read(port);
    }
    return std::nullopt;
  }
  // Nothing else is wired: reads float high as on an empty ISA bus (so probes for COM2-4 etc.
  // find nothing), writes are dropped.
  if (!is_write) {
    std::memset(data, 0xff, size);
  }
  return std::nullopt;
}

void Vm::HandleMmio(uint64_t addr, bool is_write, uint8_t* data, uint32_t size) {
  if (addr >= arch::kVirtioMmioBase && size <= 8) {
    const uint64_t index = (addr - arch::kVirtioMmioBase) / arch::kVirtioMmioSize;
    const uint64_t offset = (addr - arch::kVirtioMmioBase) % arch::kVirtioMmioSize;
    if (index < virtio_.size() && offset + size <= arch::kVirtioMmioSize) {
      devices::virtio::MmioTransport& t = *virtio_[index].transport;
      if (is_write) {
        t.Write(offset, absl::Span<const uint8_t>(data, size));
      } else {
        t.Read(offset, absl::Span<uint8_t>(data, size));
      }
      return;
    }
  }
  if (!is_write) {
    std::memset(data, 0xff, size);  // Unbacked MMIO reads all-ones, like a PC.
  }
}

void Vm::Finish(VmEnd end) {
  {
    std::lock_guard lock(end_mu_);
    if (!end_.has_value()) {
      end_ = std::move(end);
    }
  }
  uint64_t one = 1;
  (void)!write(end_event_.get(), &one, sizeof(one));
}

void Vm::RequestStop() {
  Finish({.exit_code = kExitStopped, .message = "stopped by request"});
}

void Vm::KickVcpus() {
  for (std::thread& t : threads_) {
    if (t.joinable()) {
      pthread_kill(t.native_handle(), KickSignal());
    }
  }
}

void Vm::StopVcpus() {
  stop_vcpus_.store(true, std::memory_order_release);
  pause_.Stop();  // Also releases vCPUs parked for a snapshot.
  for (size_t i = 0; i < threads_.size(); ++i) {
    // immediate_exit covers a thread that is about to enter KVM_RUN when the signal lands.
    vcpus_[i]->run()->immediate_exit = 1;
  }
  KickVcpus();
  for (std::thread& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
}

VmEnd Vm::Run() {
  ExitHandlers handlers{
      .pio = [this](uint16_t port, bool w, uint8_t* d, uint32_t s) { return HandlePio(port, w, d, s); },
      .mmio = [this](uint64_t a, bool w, uint8_t* d, uint32_t s) { HandleMmio(a, w, d, s); },
  };
  if (options_.report_timing_from.has_value()) {
    // Close enough to the first instruction: the next thing the boot vCPU does is KVM_RUN.
    const absl::Duration d = absl::Now() - *options_.report_timing_from;
    std::string phases;
    for (const auto& [name, at] : phases_) {
      absl::StrAppend(&phases, " ", name, "_us=", absl::ToInt64Microseconds(at));
    }
    std::fprintf(stderr, "supermachine-worker: timing: start_to_first_kvm_run_us=%lld%s\n",
                 static_cast<long long>(absl::ToInt64Microseconds(d)), phases.c_str());
  }
  for (auto& vcpu : vcpus_) {
    kvm::VcpuFd* v = vcpu.get();
    threads_.emplace_back([this, v, handlers] {
      for (;;) {
        std::optional<VmEnd> end = RunVcpu(*v, handlers, pause_.leave_run());
        if (end.has_value()) {
          Finish(*std::move(end));
          break;
        }
        if (pause_.stopping()) {
          break;
        }
        // A pause (vcpu_pause.h): one more KVM_RUN with immediate_exit set completes an
        // in-flight PIO/MMIO read and returns at once, so the saved state has no half-done I/O.
        (void)v->Run();
        pause_.Park(v->run());
      }
      pause_.MarkExited();
    });
  }

  // Event loop on this thread.
  base::UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  auto add = [&](int fd, uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    return epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  // Tags: 0 = end event, 1 = stop signal, 2 = serial input, 3+ = index into `notifiers`:
  // a queue's ioeventfd, or a device's host event fd (vsock's host sockets).
  struct Notifier {
    int fd;
    devices::virtio::MmioTransport* transport;
    uint32_t queue;
    bool host_events;  // fd is the device's host_event_fd(), not an ioeventfd.
  };
  std::vector<Notifier> notifiers;
  bool loop_ok = ep.valid() && add(end_event_.get(), 0);
  if (options_.stop_signal_fd >= 0) {
    loop_ok = loop_ok && add(options_.stop_signal_fd, 1);
  }
  (void)(options_.serial_input_fd >= 0 && add(options_.serial_input_fd, 2));
  bool serial_paused = false;
  for (VirtioSlot& s : virtio_) {
    for (uint32_t q = 0; q < s.ioeventfds.size(); ++q) {
      notifiers.push_back({s.ioeventfds[q].get(), s.transport.get(), q, false});
      loop_ok = loop_ok && add(s.ioeventfds[q].get(), 3 + notifiers.size() - 1);
    }
    if (const int fd = s.transport->host_event_fd(); fd >= 0) {
      notifiers.push_back({fd, s.transport.get(), 0, true});
      loop_ok = loop_ok && add(fd, 3 + notifiers.size() - 1);
    }
  }
  constexpr uint64_t kControlTag = ~0ull;
  if (control_ != nullptr) {
    loop_ok = loop_ok && add(control_->fd(), kControlTag);
  }
  if (!loop_ok) {
    Finish({.exit_code = kExitVmmError,
            .message = absl::StrCat("event loop setup failed: ", strerror(errno))});
  }
  bool done = false;
  while (!done) {
    epoll_event events[16];
    // While the guest's input FIFO is full, stdin is not watched (it is level-triggered and
    // would spin); poll for room every 10 ms instead.
    if (serial_paused && serial_->input_space() > 0) {
      serial_paused = !add(options_.serial_input_fd, 2);
    }
    int n = epoll_wait(ep.get(), events, 16, serial_paused ? 10 : -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      Finish({.exit_code = kExitVmmError,
              .message = absl::StrCat("epoll_wait: ", strerror(errno))});
      break;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == 0) {
        done = true;
      } else if (tag == kControlTag) {
        control_->Process();
      } else if (tag == 1) {
        signalfd_siginfo si{};
        if (read(options_.stop_signal_fd, &si, sizeof(si)) == sizeof(si)) {
          Finish({.exit_code = kExitStopped,
                  .message = absl::StrCat("stopped by signal ", si.ssi_signo, " (",
                                          strsignal(static_cast<int>(si.ssi_signo)), ")")});
        }
        done = true;
      } else if (tag == 2) {
        uint8_t buf[devices::Serial::kInputFifo];
        const size_t space = serial_->input_space();
        if (space == 0) {
          epoll_ctl(ep.get(), EPOLL_CTL_DEL, options_.serial_input_fd, nullptr);
          serial_paused = true;
          continue;
        }
        ssize_t got = read(options_.serial_input_fd, buf, space);
        if (got > 0) {
          serial_->EnqueueInput(absl::Span<const uint8_t>(buf, static_cast<size_t>(got)));
        } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
          // EOF or error: stop watching; the guest simply gets no more input.
          epoll_ctl(ep.get(), EPOLL_CTL_DEL, options_.serial_input_fd, nullptr);
        }
      } else {
        const Notifier& nt = notifiers[tag - 3];
        uint64_t count;
        if (nt.host_events) {
          nt.transport->ProcessHostEvents();  // Level-triggered: the device drains it.
        } else if (read(nt.fd, &count, sizeof(count)) == sizeof(count)) {
          nt.transport->Notify(nt.queue);
        }
      }
    }
  }
  StopVcpus();
  if (options_.report_timing_from.has_value()) {
    ReportMemoryUse();
  }
  if (serial_log_ != nullptr) {
    const RotatingLogStats st = serial_log_->stats();
    if (st.rotations != 0 || st.dropped != 0 || st.rotate_errors != 0) {
      // Lost console output and failed rotations are otherwise invisible (docs/operations.md).
      std::fprintf(stderr, "supermachine-worker: console: %s\n", serial_log_->StatsLine().c_str());
    }
  }
  if (balloon_ != nullptr) {
    // What the guest gave back over this worker's life, for worker.log (docs/balloon.md).
    std::fprintf(stderr, "supermachine-worker: balloon: %s\n", BalloonStatsLine().c_str());
  }
  std::lock_guard lock(end_mu_);
  return end_.value_or(VmEnd{.exit_code = kExitVmmError, .message = "VM ended without a cause"});
}

void Vm::ApplyKsm() const {
  if (!options_.config.ksm) {
    return;
  }
  // A performance knob must not take the VM down: the guest runs the same without merging.
  if (absl::Status st = memory::MarkMergeable(*mem_); !st.ok()) {
    std::fprintf(stderr, "supermachine-worker: --ksm: %s\n", std::string(st.message()).c_str());
    return;
  }
  if (std::string notice = memory::KsmOffNotice(); !notice.empty()) {
    std::fprintf(stderr, "supermachine-worker: --ksm: %s\n", notice.c_str());
  }
}

void Vm::MarkPhase(const char* name) {
  if (options_.report_timing_from.has_value()) {
    phases_.emplace_back(name, absl::Now() - *options_.report_timing_from);
  }
}

void Vm::ReportMemoryUse() const {
  // Guest RAM is a shared memfd mapping, so its touched pages show up as RssShmem; the rest
  // (RssAnon + RssFile) is the VMM's own footprint.
  std::ifstream status("/proc/self/status");
  std::string line;
  std::string out = "supermachine-worker: memory:";
  while (std::getline(status, line)) {
    for (const char* key : {"VmRSS:", "VmHWM:", "RssAnon:", "RssFile:", "RssShmem:"}) {
      if (line.rfind(key, 0) == 0) {
        std::string value = line.substr(std::strlen(key));
        value.erase(0, value.find_first_not_of(" \t"));
        absl::StrAppend(&out, " ", key, value);
      }
    }
  }
  std::fprintf(stderr, "%s\n", out.c_str());
}

std::string Vm::BalloonStatsLine() {
  if (balloon_ == nullptr) {
    return "";
  }
  std::string line;
  (void)balloon_->WithDevice(
      [&line](devices::virtio::VirtioDevice& d, absl::Span<devices::virtio::Queue>,
              const memory::GuestMemory&) -> absl::StatusOr<bool> {
        line = static_cast<devices::virtio::Balloon&>(d).StatsLine();
        return false;
      });
  return line;
}

std::string Vm::NetStatsLine() {
  if (net_ == nullptr) {
    return "";
  }
  // Counters are atomics and mac/config fixed after creation: no transport lock needed.
  return absl::StrCat("mac=", ::supermachine::net::ToString(net_->mac()), " egress=",
                      ::supermachine::net::ToString(net_->config().filter.policy), " ",
                      net_->StatsLine());
}

}  // namespace supermachine::vmm
