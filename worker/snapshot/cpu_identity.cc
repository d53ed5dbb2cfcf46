// File: cpu_identity.cc
// CPU identity from a CPUID table, and the compatibility check.
#include "worker/snapshot/cpu_identity.h"

#include <array>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace supermachine::snapshot {
namespace {


struct WordSpec {
  uint32_t function;
  uint32_t index;
  uint32_t reg;  // 0 eax, 1 ebx, 2 ecx, 3 edx.
  // Bits KVM changes at run time from guest state, so a running vCPU's table differs from the
  // supported one there without any host difference: leaf 1 ecx OSXSAVE (27, mirrors CR4),
  // leaf 1 edx APIC (9, mirrors the APIC base MSR), leaf 7 ecx OSPKE (4, mirrors CR4).
  uint32_t dynamic_mask;
};

constexpr std::array<WordSpec, 8> kWords = {{
    {0x1, 0, 2, 1u << 27},
    {0x1, 0, 3, 1u << 9},
    {0x7, 0, 1, 0},
    {0x7, 0, 2, 1u << 4},
    {0x7, 0, 3, 0},
    {0xd, 1, 0, 0},
    {0x80000001, 0, 2, 0},
    {0x80000001, 0, 3, 0},
}};

constexpr std::array<const char*, 4> kRegNames = {"eax", "ebx", "ecx", "edx"};

const kvm_cpuid_entry2* Find(const kvm::CpuidList& cpuid, uint32_t function, uint32_t index) {
  for (uint32_t i = 0; i < cpuid.size(); ++i) {
    const kvm_cpuid_entry2& e = cpuid.at(i);
    const bool indexed = (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0;
    if (e.function == function && (!indexed || e.index == index)) {
      return &e;
    }
  }
  return nullptr;
}

uint32_t Reg(const kvm_cpuid_entry2& e, uint32_t reg) {
  switch (reg) {
    case 0:
      return e.eax;
    case 1:
      return e.ebx;
    case 2:
      return e.ecx;
    default:
      return e.edx;
  }
}

uint32_t DynamicMask(uint32_t function, uint32_t index, uint32_t reg) {
  for (const WordSpec& w : kWords) {
    if (w.function == function && w.index == index && w.reg == reg) {
      return w.dynamic_mask;
    }
  }
  return 0;
}

}  // namespace

v1::CpuIdentity CpuIdentityFromCpuid(const kvm::CpuidList& cpuid) {
  v1::CpuIdentity id;
  if (const kvm_cpuid_entry2* leaf0 = Find(cpuid, 0, 0)) {
    char vendor[12];
    std::memcpy(vendor, &leaf0->ebx, 4);
    std::memcpy(vendor + 4, &leaf0->edx, 4);
    std::memcpy(vendor + 8, &leaf0->ecx, 4);
    id.set_vendor(std::string(vendor, sizeof(vendor)));
  }
  if (const kvm_cpuid_entry2* leaf1 = Find(cpuid, 1, 0)) {
    const uint32_t eax = leaf1->eax;
    uint32_t family = (eax >> 8) & 0xf;
    uint32_t model = (eax >> 4) & 0xf;
    if (family == 0xf) {
      family += (eax >> 20) & 0xff;
    }
    if (family == 0x6 || family >= 0xf) {
      model += ((eax >> 16) & 0xf) << 4;
    }
    id.set_family(family);
    id.set_model(model);
    id.set_stepping(eax & 0xf);
  }
  for (const WordSpec& w : kWords) {
    const kvm_cpuid_entry2* e = Find(cpuid, w.function, w.index);
    v1::FeatureWord* word = id.add_features();
    word->set_function(w.function);
    word->set_index(w.index);
    word->set_register_(w.reg);
    word->set_bits(e == nullptr ? 0 : Reg(*e, w.reg));
  }
  return id;
}

absl::Status CheckCpuCompatible(const v1::CpuIdentity& saved, const v1::CpuIdentity& host) {
  if (saved.vendor() != host.vendor()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "snapshot was taken on a '", saved.vendor(), "' CPU, this host is '", host.vendor(),
        "': a guest cannot move between CPU vendors; restore it on a host like the one that "
        "took it"));
  }
  std::string missing;
  for (const v1::FeatureWord& want : saved.features()) {
    uint32_t have = 0;
    for (const v1::FeatureWord& h : host.features()) {
      if (h.function() == want.function() && h.index() == want.index() &&
          h.register_() == want.register_()) {
        have = h.bits();
      }
    }
    const uint32_t lacking =
        want.bits() & ~have & ~DynamicMask(want.function(), want.index(), want.register_());
    if (lacking != 0) {
      absl::StrAppendFormat(&missing, "%sleaf 0x%x.%d %s bits 0x%08x", missing.empty() ? "" : ", ",
                            want.function(), want.index(),
                            kRegNames[want.register_() & 3], lacking);
    }
  }
  if (!missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this host's CPU (as KVM offers it) lacks features the snapshot's guest was shown (",
        missing,
        "); restore on a host with the same or a newer CPU model, or take the snapshot on the "
        "oldest host of the fleet"));
  }
  return absl::OkStatus();
}

}  // namespace supermachine::snapshot
