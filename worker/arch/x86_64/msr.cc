// File: msr.cc
// Boot MSR list.
#include "worker/arch/x86_64/msr.h"

#include <cstdint>

namespace supermachine::arch {
namespace {

kvm_msr_entry Msr(uint32_t index, uint64_t value) {
  kvm_msr_entry e{};
  e.index = index;
  e.data = value;
  return e;
}

constexpr uint32_t kMsrSysenterCs = 0x174;
constexpr uint32_t kMsrSysenterEsp = 0x175;
constexpr uint32_t kMsrSysenterEip = 0x176;
constexpr uint32_t kMsrStar = 0xc0000081;
constexpr uint32_t kMsrLstar = 0xc0000082;
constexpr uint32_t kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084;
constexpr uint32_t kMsrKernelGsBase = 0xc0000102;
constexpr uint32_t kMsrTsc = 0x10;
constexpr uint32_t kMsrMiscEnable = 0x1a0;
constexpr uint64_t kMiscEnableFastString = 1;
constexpr uint32_t kMsrMtrrDefType = 0x2ff;
constexpr uint64_t kMtrrEnable = 1ull << 11;
constexpr uint64_t kMtrrTypeWriteBack = 6;

}  // namespace

std::vector<kvm_msr_entry> BootMsrs() {
  return {
      Msr(kMsrSysenterCs, 0),   Msr(kMsrSysenterEsp, 0),
      Msr(kMsrSysenterEip, 0),  Msr(kMsrStar, 0),
      Msr(kMsrCstar, 0),        Msr(kMsrKernelGsBase, 0),
      Msr(kMsrSyscallMask, 0),  Msr(kMsrLstar, 0),
      Msr(kMsrTsc, 0),          Msr(kMsrMiscEnable, kMiscEnableFastString),
      Msr(kMsrMtrrDefType, kMtrrEnable | kMtrrTypeWriteBack),
  };
}

}  // namespace supermachine::arch
