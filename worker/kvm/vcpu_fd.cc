// File: vcpu_fd.cc
// KVM vCPU ioctls.
#include "worker/kvm/vcpu_fd.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/base/status_macros.h"

namespace supermachine::kvm {

absl::StatusOr<VcpuFd> VcpuFd::Create(base::UniqueFd fd, uint32_t id, int mmap_size) {
  SM_ASSIGN_OR_RETURN(memory::Mapping run,
                      memory::Mapping::Map(fd.get(), static_cast<size_t>(mmap_size),
                                           PROT_READ | PROT_WRITE, MAP_SHARED));
  return VcpuFd(std::move(fd), id, std::move(run));
}

int VcpuFd::Run() {
  if (ioctl(fd_.get(), KVM_RUN, 0) < 0) {
    return errno;
  }
  return 0;
}

absl::StatusOr<kvm_regs> VcpuFd::GetRegs() const {
  kvm_regs regs{};
  if (ioctl(fd_.get(), KVM_GET_REGS, &regs) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_GET_REGS"));
  }
  return regs;
}

absl::Status VcpuFd::SetRegs(const kvm_regs& regs) {
  if (ioctl(fd_.get(), KVM_SET_REGS, &regs) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_SET_REGS"));
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_sregs> VcpuFd::GetSregs() const {
  kvm_sregs sregs{};
  if (ioctl(fd_.get(), KVM_GET_SREGS, &sregs) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_GET_SREGS"));
  }
  return sregs;
}

absl::Status VcpuFd::SetSregs(const kvm_sregs& sregs) {
  if (ioctl(fd_.get(), KVM_SET_SREGS, &sregs) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_SET_SREGS"));
  }
  return absl::OkStatus();
}

absl::Status VcpuFd::SetFpu(const kvm_fpu& fpu) {
  if (ioctl(fd_.get(), KVM_SET_FPU, &fpu) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_SET_FPU"));
  }
  return absl::OkStatus();
}

absl::Status VcpuFd::SetCpuid(const CpuidList& cpuid) {
  if (ioctl(fd_.get(), kIoctlSetCpuid2, cpuid.data()) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_SET_CPUID2"));
  }
  return absl::OkStatus();
}

absl::Status VcpuFd::SetMsrs(const std::vector<kvm_msr_entry>& entries) {
  // kvm_msrs laid out by hand: see abi.h.
  const size_t bytes = sizeof(MsrsHeader) + entries.size() * sizeof(kvm_msr_entry);
  auto storage = std::make_unique<uint8_t[]>(bytes);
  MsrsHeader header{.nmsrs = static_cast<uint32_t>(entries.size()), .pad = 0};
  std::memcpy(storage.get(), &header, sizeof(header));
  std::memcpy(storage.get() + sizeof(header), entries.data(),
              entries.size() * sizeof(kvm_msr_entry));
  int r = ioctl(fd_.get(), kIoctlSetMsrs, storage.get());
  if (r < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_SET_MSRS"));
  }
  // KVM_SET_MSRS returns how many it set; it stops at the first it rejects.
  if (static_cast<size_t>(r) != entries.size()) {
    return absl::InternalError(absl::StrFormat("vcpu %u: KVM_SET_MSRS rejected MSR 0x%x", id_,
                                               entries[static_cast<size_t>(r)].index));
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_lapic_state> VcpuFd::GetLapic() const {
  kvm_lapic_state lapic{};
  if (ioctl(fd_.get(), KVM_GET_LAPIC, &lapic) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_GET_LAPIC"));
  }
  return lapic;
}

absl::Status VcpuFd::SetLapic(const kvm_lapic_state& lapic) {
  if (ioctl(fd_.get(), KVM_SET_LAPIC, &lapic) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_SET_LAPIC"));
  }
  return absl::OkStatus();
}

namespace {

// One GET/SET ioctl on a fixed-size struct.
template <typename T>
absl::StatusOr<T> GetStruct(int fd, unsigned long request, uint32_t id, const char* name) {
  T value{};
  if (ioctl(fd, request, &value) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id, ": ", name));
  }
  return value;
}

template <typename T>
absl::Status SetStruct(int fd, unsigned long request, const T& value, uint32_t id,
                       const char* name) {
  if (ioctl(fd, request, &value) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id, ": ", name));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<kvm_mp_state> VcpuFd::GetMpState() const {
  return GetStruct<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, id_, "KVM_GET_MP_STATE");
}

absl::Status VcpuFd::SetMpState(const kvm_mp_state& state) {
  return SetStruct(fd_.get(), KVM_SET_MP_STATE, state, id_, "KVM_SET_MP_STATE");
}

absl::StatusOr<CpuidList> VcpuFd::GetCpuid() const {
  CpuidList list;
  if (ioctl(fd_.get(), kIoctlGetCpuid2, list.data()) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_GET_CPUID2"));
  }
  return list;
}

absl::StatusOr<std::vector<uint8_t>> VcpuFd::GetXsave(size_t xsave2_size) const {
  const bool v2 = xsave2_size > 0;
  std::vector<uint8_t> buf(std::max(xsave2_size, sizeof(XsaveRegion)));
  if (ioctl(fd_.get(), v2 ? kIoctlGetXsave2 : kIoctlGetXsave, buf.data()) < 0) {
    return base::ErrnoToStatus(
        errno, absl::StrCat("vcpu ", id_, v2 ? ": KVM_GET_XSAVE2" : ": KVM_GET_XSAVE"));
  }
  return buf;
}

absl::Status VcpuFd::SetXsave(const std::vector<uint8_t>& xsave) {
  if (xsave.size() < sizeof(XsaveRegion)) {
    return absl::InvalidArgumentError(
        absl::StrCat("vcpu ", id_, ": xsave area of ", xsave.size(), " bytes, need 4096"));
  }
  if (ioctl(fd_.get(), kIoctlSetXsave, xsave.data()) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_SET_XSAVE"));
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_xcrs> VcpuFd::GetXcrs() const {
  return GetStruct<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, id_, "KVM_GET_XCRS");
}

absl::Status VcpuFd::SetXcrs(const kvm_xcrs& xcrs) {
  return SetStruct(fd_.get(), KVM_SET_XCRS, xcrs, id_, "KVM_SET_XCRS");
}

absl::StatusOr<kvm_debugregs> VcpuFd::GetDebugRegs() const {
  return GetStruct<kvm_debugregs>(fd_.get(), KVM_GET_DEBUGREGS, id_, "KVM_GET_DEBUGREGS");
}

absl::Status VcpuFd::SetDebugRegs(const kvm_debugregs& regs) {
  return SetStruct(fd_.get(), KVM_SET_DEBUGREGS, regs, id_, "KVM_SET_DEBUGREGS");
}

absl::StatusOr<kvm_vcpu_events> VcpuFd::GetVcpuEvents() const {
  return GetStruct<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, id_, "KVM_GET_VCPU_EVENTS");
}

absl::Status VcpuFd::SetVcpuEvents(const kvm_vcpu_events& events) {
  return SetStruct(fd_.get(), KVM_SET_VCPU_EVENTS, events, id_, "KVM_SET_VCPU_EVENTS");
}

absl::StatusOr<uint32_t> VcpuFd::GetTscKhz() const {
  int r = ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
  if (r < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_GET_TSC_KHZ"));
  }
  return static_cast<uint32_t>(r);
}

absl::Status VcpuFd::SetTscKhz(uint32_t khz) {
  if (ioctl(fd_.get(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(khz)) < 0) {
    return base::ErrnoToStatus(errno,
                               absl::StrCat("vcpu ", id_, ": KVM_SET_TSC_KHZ ", khz, " kHz"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<kvm_msr_entry>> VcpuFd::GetMsrs(
    const std::vector<uint32_t>& indices) const {
  // kvm_msrs laid out by hand: see abi.h.
  const size_t bytes = sizeof(MsrsHeader) + indices.size() * sizeof(kvm_msr_entry);
  auto storage = std::make_unique<uint8_t[]>(bytes);
  MsrsHeader header{.nmsrs = static_cast<uint32_t>(indices.size()), .pad = 0};
  std::memcpy(storage.get(), &header, sizeof(header));
  std::vector<kvm_msr_entry> entries(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    entries[i].index = indices[i];
  }
  std::memcpy(storage.get() + sizeof(header), entries.data(),
              entries.size() * sizeof(kvm_msr_entry));
  int r = ioctl(fd_.get(), kIoctlGetMsrs, storage.get());
  if (r < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_GET_MSRS"));
  }
  std::memcpy(entries.data(), storage.get() + sizeof(header),
              entries.size() * sizeof(kvm_msr_entry));
  entries.resize(static_cast<size_t>(r));
  return entries;
}

absl::Status VcpuFd::KvmclockCtrl() {
  if (ioctl(fd_.get(), KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL) {
    return base::ErrnoToStatus(errno, absl::StrCat("vcpu ", id_, ": KVM_KVMCLOCK_CTRL"));
  }
  return absl::OkStatus();
}

std::string VcpuFd::DumpRegisters() const {
  std::string out = absl::StrCat("vcpu ", id_, ":");
  auto regs = GetRegs();
  if (regs.ok()) {
    const kvm_regs& r = *regs;
    absl::StrAppendFormat(&out,
                          " rip=0x%x rsp=0x%x rbp=0x%x rflags=0x%x rax=0x%x rbx=0x%x rcx=0x%x "
                          "rdx=0x%x rsi=0x%x rdi=0x%x",
                          r.rip, r.rsp, r.rbp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi);
  } else {
    absl::StrAppend(&out, " (regs unavailable: ", regs.status().message(), ")");
  }
  auto sregs = GetSregs();
  if (sregs.ok()) {
    const kvm_sregs& s = *sregs;
    absl::StrAppendFormat(&out,
                          " cr0=0x%x cr2=0x%x cr3=0x%x cr4=0x%x efer=0x%x cs=0x%x(base 0x%x l=%d "
                          "db=%d) ss=0x%x",
                          s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.cs.selector, s.cs.base, s.cs.l,
                          s.cs.db, s.ss.selector);
    absl::StrAppendFormat(&out, " idt=0x%x/0x%x gdt=0x%x/0x%x tr=0x%x(base 0x%x) apic_base=0x%x",
                          s.idt.base, s.idt.limit, s.gdt.base, s.gdt.limit, s.tr.selector,
                          s.tr.base, s.apic_base);
  }
  // Why a guest faulted (e.g. a triple fault): the exception or interrupt KVM was delivering.
  auto events = GetVcpuEvents();
  if (events.ok()) {
    const kvm_vcpu_events& e = *events;
    absl::StrAppendFormat(&out,
                          " exception(injected=%d pending=%d nr=%d error=0x%x) "
                          "interrupt(injected=%d nr=%d) nmi(injected=%d pending=%d)",
                          e.exception.injected, e.exception.pending, e.exception.nr,
                          e.exception.error_code, e.interrupt.injected, e.interrupt.nr,
                          e.nmi.injected, e.nmi.pending);
  }
  return out;
}

}  // namespace supermachine::kvm
