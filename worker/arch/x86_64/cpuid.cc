// File: cpuid.cc
// CPUID leaf rewriting.
#include "worker/arch/x86_64/cpuid.h"

#include <cpuid.h>

namespace supermachine::arch {
namespace {

constexpr uint32_t kLeaf1EcxHypervisor = 1u << 31;
constexpr uint32_t kLeaf1EcxTscDeadline = 1u << 24;
constexpr uint32_t kLeaf1EbxApicIdShift = 24;
constexpr uint32_t kLeaf1EbxLogicalCountShift = 16;
constexpr uint32_t kLeaf1EdxHtt = 1u << 28;
constexpr uint32_t kLeaf6EcxEpb = 1u << 3;  // Energy-performance bias: a host power knob.

uint32_t CeilLog2(uint32_t n) {
  uint32_t bits = 0;
  while ((1u << bits) < n) {
    ++bits;
  }
  return bits;
}

}  // namespace

std::array<uint32_t, 12> HostBrandString() {
  std::array<uint32_t, 12> brand{};
  unsigned max_ext = __get_cpuid_max(0x80000000, nullptr);
  if (max_ext < 0x80000004) {
    return brand;
  }
  for (size_t leaf = 0; leaf < 3; ++leaf) {
    unsigned a, b, c, d;
    __cpuid(0x80000002 + static_cast<unsigned>(leaf), a, b, c, d);
    brand[leaf * 4] = a;
    brand[leaf * 4 + 1] = b;
    brand[leaf * 4 + 2] = c;
    brand[leaf * 4 + 3] = d;
  }
  return brand;
}

void NormalizeCpuid(const CpuidOptions& options, kvm::CpuidList* cpuid) {
  bool brand_set = false;
  for (uint32_t word : options.brand) {
    brand_set = brand_set || word != 0;
  }
  const uint32_t vcpu_id = options.vcpu_id;
  const uint32_t vcpu_count = options.vcpu_count;
  // Model the vCPUs as cores of one socket, one thread each: simple, and Linux counts CPUs
  // from the MP table anyway; topology only decides how the scheduler groups them.
  const uint32_t core_bits = CeilLog2(vcpu_count);
  for (uint32_t i = 0; i < cpuid->size(); ++i) {
    kvm_cpuid_entry2& e = cpuid->at(i);
    switch (e.function) {
      case 0x1:
        e.ebx = (e.ebx & 0x0000ffffu) | (vcpu_id << kLeaf1EbxApicIdShift) |
                ((vcpu_count > 1 ? (1u << core_bits) : 1u) << kLeaf1EbxLogicalCountShift);
        if (vcpu_count > 1) {
          e.edx |= kLeaf1EdxHtt;
        } else {
          e.edx &= ~kLeaf1EdxHtt;
        }
        // Tells the guest it is virtualised: it then uses KVM's paravirt clock and skips
        // hardware probes (e.g. TSC calibration against the PIT).
        e.ecx |= kLeaf1EcxHypervisor;
        if (options.tsc_deadline) {
          e.ecx |= kLeaf1EcxTscDeadline;
        }
        break;
      case 0x4:
        // Deterministic cache parameters: EAX[31:26] = cores per package - 1.
        e.eax = (e.eax & 0x03ffffffu) | (((1u << core_bits) - 1) << 26);
        // EAX[25:14] = threads sharing this cache - 1; one thread per core.
        e.eax &= ~(0xfffu << 14);
        break;
      case 0x6:
        e.ecx &= ~kLeaf6EcxEpb;
        break;
      case 0xa:
        // No virtual PMU: the guest must not program host performance counters.
        e.eax = e.ebx = e.ecx = e.edx = 0;
        break;
      case 0xb:
        // Extended topology: level 0 = SMT (1 thread), level 1 = core (vcpu_count).
        e.edx = vcpu_id;  // x2APIC id.
        if (e.index == 0) {
          e.eax = 0;
          e.ebx = 1;
          e.ecx = (1u << 8) | 0;
        } else if (e.index == 1) {
          e.eax = core_bits;
          e.ebx = vcpu_count;
          e.ecx = (2u << 8) | 1;
        } else {
          e.eax = 0;
          e.ebx = 0;
          e.ecx = e.index;
        }
        break;
      case 0x80000002:
      case 0x80000003:
      case 0x80000004:
        if (brand_set) {
          const uint32_t base = (e.function - 0x80000002) * 4;
          e.eax = options.brand[base];
          e.ebx = options.brand[base + 1];
          e.ecx = options.brand[base + 2];
          e.edx = options.brand[base + 3];
        }
        break;
      case 0x80000008:
        // AMD: ECX[7:0] = cores per package - 1, ECX[15:12] = APIC id bits for cores.
        e.ecx = (e.ecx & ~0xf0ffu) | ((vcpu_count - 1) & 0xff) | (core_bits << 12);
        break;
      case 0x8000001e:
        // AMD extended APIC id / core id; one thread per core.
        e.eax = vcpu_id;
        e.ebx = (e.ebx & ~0xffffu) | (vcpu_id & 0xff);
        e.ecx = 0;
        break;
      default:
        break;
    }
  }
}

}  // namespace supermachine::arch
