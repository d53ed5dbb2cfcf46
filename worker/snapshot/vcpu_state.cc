// File: vcpu_state.cc
// One vCPU's KVM state to and from its snapshot message.
#include "worker/snapshot/vcpu_state.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::snapshot {
namespace {


constexpr uint32_t kMsrIa32Tsc = 0x10;
constexpr uint32_t kMsrIa32TscDeadline = 0x6e0;

template <typename T>
std::string ToBlob(const T& value) {
  return std::string(reinterpret_cast<const char*>(&value), sizeof(T));
}

// A saved kernel struct; its size must match this build's exactly.
template <typename T>
absl::StatusOr<T> FromBlob(const std::string& blob, uint32_t vcpu, const char* name) {
  if (blob.size() != sizeof(T)) {
    return absl::DataLossError(absl::StrCat("vcpu ", vcpu, " ", name, ": ", blob.size(),
                                            " bytes saved, expected ", sizeof(T),
                                            "; the state file is corrupt or foreign"));
  }
  T value;
  std::memcpy(&value, blob.data(), sizeof(T));
  return value;
}

absl::Status Step(const absl::Status& status, const char* step) {
  return status.ok() ? status : base::Annotate(status, absl::StrCat("restore ", step));
}

}  // namespace

absl::StatusOr<std::vector<uint32_t>> SaveableMsrs(const kvm::Kvm& kvm,
                                                   const kvm::VcpuFd& vcpu) {
  SM_ASSIGN_OR_RETURN(std::vector<uint32_t> list, kvm.MsrIndexList());
  // Each round reads the whole list; KVM stops at the first MSR it refuses, which we drop.
  // Bounded by the list length (one MSR leaves per round).
  while (!list.empty()) {
    SM_ASSIGN_OR_RETURN(std::vector<kvm_msr_entry> got, vcpu.GetMsrs(list));
    if (got.size() == list.size()) {
      break;
    }
    list.erase(list.begin() + static_cast<std::ptrdiff_t>(got.size()));
  }
  return list;
}

absl::StatusOr<v1::VcpuState> SaveVcpu(const kvm::VcpuFd& vcpu, const VcpuSaveOptions& options) {
  v1::VcpuState state;
  state.set_id(vcpu.id());
  // KVM_GET_MP_STATE first: it processes pending INIT/SIPI (kvm_apic_accept_events), which
  // changes registers and LAPIC state; reading those before it would save a stale view.
  SM_ASSIGN_OR_RETURN(kvm_mp_state mp, vcpu.GetMpState());
  state.set_mp_state(mp.mp_state);
  SM_ASSIGN_OR_RETURN(kvm_regs regs, vcpu.GetRegs());
  state.set_regs(ToBlob(regs));
  SM_ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  state.set_sregs(ToBlob(sregs));
  SM_ASSIGN_OR_RETURN(std::vector<uint8_t> xsave, vcpu.GetXsave(options.xsave2_size));
  state.set_xsave(std::string(xsave.begin(), xsave.end()));
  SM_ASSIGN_OR_RETURN(kvm_xcrs xcrs, vcpu.GetXcrs());
  state.set_xcrs(ToBlob(xcrs));
  SM_ASSIGN_OR_RETURN(kvm_debugregs debugregs, vcpu.GetDebugRegs());
  state.set_debugregs(ToBlob(debugregs));
  SM_ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu.GetLapic());
  state.set_lapic(ToBlob(lapic));
  // TSC frequency: a host without KVM_GET_TSC_KHZ saves 0 and restore leaves the rate alone.
  absl::StatusOr<uint32_t> khz = vcpu.GetTscKhz();
  state.set_tsc_khz(khz.ok() ? *khz : 0);
  kvm::CpuidList cpuid;
  if (options.cpuid != nullptr) {
    cpuid = options.cpuid->Clone();
  } else {
    SM_ASSIGN_OR_RETURN(cpuid, vcpu.GetCpuid());
  }
  for (uint32_t i = 0; i < cpuid.size(); ++i) {
    const kvm_cpuid_entry2& e = cpuid.at(i);
    v1::CpuidEntry* out = state.add_cpuid();
    out->set_function(e.function);
    out->set_index(e.index);
    out->set_flags(e.flags);
    out->set_eax(e.eax);
    out->set_ebx(e.ebx);
    out->set_ecx(e.ecx);
    out->set_edx(e.edx);
  }
  SM_ASSIGN_OR_RETURN(std::vector<kvm_msr_entry> msrs, vcpu.GetMsrs(options.msrs));
  if (msrs.size() != options.msrs.size()) {
    return absl::InternalError(absl::StrCat("vcpu ", vcpu.id(), ": KVM_GET_MSRS refused MSR 0x",
                                            absl::Hex(options.msrs[msrs.size()]),
                                            " that probing found readable"));
  }
  for (const kvm_msr_entry& e : msrs) {
    v1::Msr* out = state.add_msrs();
    out->set_index(e.index);
    out->set_data(e.data);
  }
  // Events last: an exception or NMI injected while we read the rest is still pending here.
  SM_ASSIGN_OR_RETURN(kvm_vcpu_events events, vcpu.GetVcpuEvents());
  state.set_vcpu_events(ToBlob(events));
  return state;
}

kvm::CpuidList CpuidFromState(const v1::VcpuState& state) {
  kvm::CpuidList cpuid;
  const auto n = static_cast<uint32_t>(
      std::min<size_t>(static_cast<size_t>(state.cpuid_size()), kvm::CpuidList::kMaxEntries));
  cpuid.set_size(n);
  for (uint32_t i = 0; i < n; ++i) {
    const v1::CpuidEntry& e = state.cpuid(static_cast<int>(i));
    kvm_cpuid_entry2& out = cpuid.at(i);
    out = kvm_cpuid_entry2{};
    out.function = e.function();
    out.index = e.index();
    out.flags = e.flags();
    out.eax = e.eax();
    out.ebx = e.ebx();
    out.ecx = e.ecx();
    out.edx = e.edx();
  }
  return cpuid;
}

absl::Status RestoreVcpu(kvm::VcpuFd& vcpu, const v1::VcpuState& state) {
  const uint32_t id = vcpu.id();
  // Decode every blob before touching the vCPU: a corrupt file fails without half a restore.
  if (state.cpuid_size() == 0 || state.cpuid_size() > static_cast<int>(kvm::CpuidList::kMaxEntries)) {
    return absl::DataLossError(absl::StrCat("vcpu ", id, ": ", state.cpuid_size(),
                                            " CPUID entries saved; the state file is corrupt"));
  }
  SM_ASSIGN_OR_RETURN(kvm_regs regs, FromBlob<kvm_regs>(state.regs(), id, "regs"));
  SM_ASSIGN_OR_RETURN(kvm_sregs sregs, FromBlob<kvm_sregs>(state.sregs(), id, "sregs"));
  SM_ASSIGN_OR_RETURN(kvm_xcrs xcrs, FromBlob<kvm_xcrs>(state.xcrs(), id, "xcrs"));
  SM_ASSIGN_OR_RETURN(kvm_debugregs debugregs,
                      FromBlob<kvm_debugregs>(state.debugregs(), id, "debugregs"));
  SM_ASSIGN_OR_RETURN(kvm_lapic_state lapic, FromBlob<kvm_lapic_state>(state.lapic(), id, "lapic"));
  SM_ASSIGN_OR_RETURN(kvm_vcpu_events events,
                      FromBlob<kvm_vcpu_events>(state.vcpu_events(), id, "vcpu_events"));
  const std::vector<uint8_t> xsave(state.xsave().begin(), state.xsave().end());

  // TSC rate before anything that reads or writes the TSC. Only when it differs: setting it
  // needs TSC scaling, which not every host (nor PVM) offers.
  if (state.tsc_khz() != 0) {
    absl::StatusOr<uint32_t> current = vcpu.GetTscKhz();
    if (current.ok() && *current != state.tsc_khz()) {
      SM_RETURN_IF_ERROR(base::Annotate(
          vcpu.SetTscKhz(state.tsc_khz()),
          absl::StrCat("restore tsc_khz (the snapshot's TSC runs at ", state.tsc_khz(),
                       " kHz, this host's at ", *current,
                       " kHz and KVM cannot scale it; restore on a host with the same TSC rate)")));
    }
  }
  // CPUID first: KVM derives from it which MSRs, xsave features and LAPIC modes are valid, so
  // every later step is checked against it.
  SM_RETURN_IF_ERROR(Step(vcpu.SetCpuid(CpuidFromState(state)), "cpuid"));
  // mp_state before registers: setting it (e.g. to RUNNABLE for an AP that left wait-for-SIPI)
  // must not reset registers we set afterwards.
  kvm_mp_state mp{};
  mp.mp_state = state.mp_state();
  SM_RETURN_IF_ERROR(Step(vcpu.SetMpState(mp), "mp_state"));
  SM_RETURN_IF_ERROR(Step(vcpu.SetRegs(regs), "regs"));
  // sregs before xsave/xcrs/lapic: CR4.OSXSAVE gates XCR0 and the APIC base (in sregs) decides
  // where and in which mode the LAPIC state applies.
  SM_RETURN_IF_ERROR(Step(vcpu.SetSregs(sregs), "sregs"));
  SM_RETURN_IF_ERROR(Step(vcpu.SetXsave(xsave), "xsave"));
  SM_RETURN_IF_ERROR(Step(vcpu.SetXcrs(xcrs), "xcrs"));
  SM_RETURN_IF_ERROR(Step(vcpu.SetDebugRegs(debugregs), "debugregs"));
  SM_RETURN_IF_ERROR(Step(vcpu.SetLapic(lapic), "lapic"));
  // MSRs after the LAPIC, and IA32_TSC_DEADLINE after IA32_TSC: the deadline is compared with
  // the TSC when written, so written first it would fire (or be dropped) at once.
  std::vector<kvm_msr_entry> msrs;
  msrs.reserve(static_cast<size_t>(state.msrs_size()));
  for (const v1::Msr& m : state.msrs()) {
    kvm_msr_entry e{};
    e.index = m.index();
    e.data = m.data();
    msrs.push_back(e);
  }
  std::stable_partition(msrs.begin(), msrs.end(), [](const kvm_msr_entry& e) {
    return e.index != kMsrIa32TscDeadline;
  });
  static_assert(kMsrIa32Tsc != kMsrIa32TscDeadline);
  if (!msrs.empty()) {
    SM_RETURN_IF_ERROR(Step(vcpu.SetMsrs(msrs), "msrs"));
  }
  // Events last: pending exceptions, NMIs and interrupt shadows apply to the final state.
  SM_RETURN_IF_ERROR(Step(vcpu.SetVcpuEvents(events), "vcpu_events"));
  return absl::OkStatus();
}

}  // namespace supermachine::snapshot
