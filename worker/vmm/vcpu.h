// File: vcpu.h
// Per-vCPU boot configuration (CPUID, MSRs, LAPIC LINT pins, boot registers) and the exit
// handling loop a vCPU thread runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "worker/arch/x86_64/cpuid.h"
#include "worker/arch/x86_64/regs.h"
#include "worker/kvm/kvm.h"
#include "worker/kvm/vcpu_fd.h"

namespace supermachine::vmm {

// Configures `vcpu` of `vcpu_count`. `boot` holds the boot vCPU's registers; application
// processors get none: they sit in wait-for-SIPI until the boot CPU starts them.
absl::Status ConfigureVcpu(kvm::VcpuFd& vcpu, const arch::CpuidOptions& cpuid_options,
                           const kvm::CpuidList& supported,
                           const std::optional<arch::BootRegs>& boot);

// What ends a VM, reported by whichever thread sees it first.
struct VmEnd {
  int exit_code = 0;
  std::string message;
};

// Callbacks the run loop uses for I/O; they run on the vCPU thread.
struct ExitHandlers {
  // Port I/O, one access of `data.size()` bytes. Returns a VmEnd to stop the VM.
  std::function<std::optional<VmEnd>(uint16_t port, bool is_write, uint8_t* data, uint32_t size)>
      pio;
  std::function<void(uint64_t addr, bool is_write, uint8_t* data, uint32_t size)> mmio;
};

// Runs `vcpu` until the guest or an error ends the VM (returned), or until `stop` is set and
// the thread is kicked (nullopt).
std::optional<VmEnd> RunVcpu(kvm::VcpuFd& vcpu, const ExitHandlers& handlers,
                             const std::atomic<bool>& stop);

}  // namespace supermachine::vmm
