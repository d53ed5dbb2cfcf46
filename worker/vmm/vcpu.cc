// File: vcpu.cc
// vCPU configuration and the KVM_RUN exit loop.
#include "worker/vmm/vcpu.h"

#include <errno.h>
#include <string.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/arch/x86_64/cpuid.h"
#include "worker/arch/x86_64/msr.h"
#include "worker/base/status_macros.h"
#include "worker/vmm/exit_codes.h"

namespace supermachine::vmm {
namespace {

constexpr size_t kApicLvtLint0 = 0x350;
constexpr size_t kApicLvtLint1 = 0x360;
constexpr uint32_t kApicModeNmi = 4;
constexpr uint32_t kApicModeExtInt = 7;

uint32_t ReadLapicReg(const kvm_lapic_state& lapic, size_t offset) {
  uint32_t v;
  std::memcpy(&v, lapic.regs + offset, 4);
  return v;
}

void WriteLapicReg(kvm_lapic_state* lapic, size_t offset, uint32_t v) {
  std::memcpy(lapic->regs + offset, &v, 4);
}

uint32_t WithDeliveryMode(uint32_t reg, uint32_t mode) { return (reg & ~0x700u) | (mode << 8); }

const char* InternalErrorName(uint32_t suberror) {
  switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION:
      return "instruction emulation failed";
    case KVM_INTERNAL_ERROR_SIMUL_EX:
      return "exception while delivering an exception";
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
      return "exit while delivering an event";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
      return "unexpected exit reason";
    default:
      return "unknown";
  }
}

}  // namespace

absl::Status ConfigureVcpu(kvm::VcpuFd& vcpu, const arch::CpuidOptions& cpuid_options,
                           const kvm::CpuidList& supported,
                           const std::optional<arch::BootRegs>& boot) {
  // CPUID first: KVM derives which MSRs and xsave features exist from it, so KVM_SET_MSRS
  // (and register state using those features) must come after KVM_SET_CPUID2.
  kvm::CpuidList cpuid = supported.Clone();
  arch::NormalizeCpuid(cpuid_options, &cpuid);
  SM_RETURN_IF_ERROR(vcpu.SetCpuid(cpuid));
  SM_RETURN_IF_ERROR(vcpu.SetMsrs(arch::BootMsrs()));
  if (boot.has_value()) {
    SM_RETURN_IF_ERROR(vcpu.SetRegs(boot->regs));
    SM_RETURN_IF_ERROR(vcpu.SetFpu(boot->fpu));
    // Start from KVM's reset sregs (which carry fields like apic_base we do not set) and
    // overlay the boot descriptor tables, segments and control registers.
    SM_ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
    arch::MergeBootSregs(boot->sregs, &sregs);
    SM_RETURN_IF_ERROR(vcpu.SetSregs(sregs));
  }
  // LINT0 = ExtINT (the legacy PIC) and LINT1 = NMI, as the MP table declares: without this the
  // local APIC masks the 8259 and early timer interrupts never arrive. Needs the in-kernel
  // irqchip, created before the vCPU.
  SM_ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu.GetLapic());
  WriteLapicReg(&lapic, kApicLvtLint0,
                WithDeliveryMode(ReadLapicReg(lapic, kApicLvtLint0), kApicModeExtInt));
  WriteLapicReg(&lapic, kApicLvtLint1,
                WithDeliveryMode(ReadLapicReg(lapic, kApicLvtLint1), kApicModeNmi));
  SM_RETURN_IF_ERROR(vcpu.SetLapic(lapic));
  return absl::OkStatus();
}

std::optional<VmEnd> RunVcpu(kvm::VcpuFd& vcpu, const ExitHandlers& handlers,
                             const std::atomic<bool>& stop) {
  kvm_run* run = vcpu.run();
  auto error = [&](const std::string& what) {
    return VmEnd{.exit_code = kExitVmmError,
                 .message = absl::StrCat(what, "; ", vcpu.DumpRegisters())};
  };
  while (!stop.load(std::memory_order_acquire)) {
    const int err = vcpu.Run();
    if (err == EINTR || err == EAGAIN) {
      continue;  // Kicked (stop is then set) or a stray signal: re-check and re-enter.
    }
    if (err != 0) {
      return error(absl::StrCat("vcpu ", vcpu.id(), ": KVM_RUN failed: ", strerror(err)));
    }
    switch (run->exit_reason) {
      case KVM_EXIT_IO: {
        auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
        const bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
        // `rep ins/outs` arrive as `count` accesses back to back in the data area.
        for (uint32_t i = 0; i < run->io.count; ++i) {
          std::optional<VmEnd> end =
              handlers.pio(run->io.port, is_write, data + i * run->io.size, run->io.size);
          if (end.has_value()) {
            return end;
          }
        }
        break;
      }
      case KVM_EXIT_MMIO:
        handlers.mmio(run->mmio.phys_addr, run->mmio.is_write != 0, run->mmio.data,
                      run->mmio.len);
        break;
      case KVM_EXIT_SHUTDOWN:
        // Triple fault: with `reboot=t` this is how the guest reboots — the VM ends.
        return VmEnd{.exit_code = kExitGuestReset,
                     .message = absl::StrCat("guest reset (triple fault on vcpu ", vcpu.id(),
                                             "); ", vcpu.DumpRegisters())};
      case KVM_EXIT_SYSTEM_EVENT:
        switch (run->system_event.type) {
          case KVM_SYSTEM_EVENT_SHUTDOWN:
            return VmEnd{.exit_code = kExitGuestShutdown, .message = "guest powered off"};
          case KVM_SYSTEM_EVENT_RESET:
            return VmEnd{.exit_code = kExitGuestReset, .message = "guest reset (system event)"};
          default:
            return error(absl::StrCat("guest system event ", run->system_event.type));
        }
      case KVM_EXIT_HLT:
        // With the in-kernel irqchip KVM handles HLT itself; seeing it means no interrupt can
        // ever wake this vCPU.
        return error(absl::StrCat("vcpu ", vcpu.id(), " halted with no way to wake"));
      case KVM_EXIT_FAIL_ENTRY:
        return error(absl::StrFormat("vcpu %u: VM entry failed (hardware reason 0x%x)",
                                     vcpu.id(),
                                     run->fail_entry.hardware_entry_failure_reason));
      case KVM_EXIT_INTERNAL_ERROR:
        return error(absl::StrFormat("vcpu %u: KVM internal error (suberror %u: %s)", vcpu.id(),
                                     run->internal.suberror,
                                     InternalErrorName(run->internal.suberror)));
      case KVM_EXIT_INTR:
        break;
      default:
        return error(absl::StrCat("vcpu ", vcpu.id(), ": unhandled KVM exit reason ",
                                  run->exit_reason));
    }
  }
  return std::nullopt;
}

}  // namespace supermachine::vmm
