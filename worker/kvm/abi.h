// File: abi.h
// C-layout twins of the KVM structs that end in a flexible array, and their ioctl numbers.
//
// Why: Debian 12's uapi headers declare those arrays with __DECLARE_FLEX_ARRAY, which in C++
// becomes an anonymous struct holding an empty struct (1 byte in C++, 0 in C). That moves the
// array (kvm_cpuid2::entries to offset 12, kvm_msrs::entries to 16, instead of 8) and changes
// sizeof, and with it the size encoded in the ioctl number: KVM_GET_SUPPORTED_CPUID from C++
// is 0xc00cae05 and the kernel answers EINVAL. So never use those structs or ioctl macros from
// C++; use these. docs/design/kvm-notes.md has the details.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace supermachine::kvm {

// struct kvm_cpuid2 without the array; entries (kvm_cpuid_entry2) follow at offset 8.
struct CpuidHeader {
  uint32_t nent;
  uint32_t padding;
};
static_assert(sizeof(CpuidHeader) == 8);
static_assert(sizeof(kvm_cpuid_entry2) == 40);

// struct kvm_msrs without the array; entries (kvm_msr_entry) follow at offset 8.
struct MsrsHeader {
  uint32_t nmsrs;
  uint32_t pad;
};
static_assert(sizeof(MsrsHeader) == 8);
static_assert(sizeof(kvm_msr_entry) == 16);

// struct kvm_msr_list without the array; indices (uint32_t) follow at offset 4.
struct MsrListHeader {
  uint32_t nmsrs;
};
static_assert(sizeof(MsrListHeader) == 4);

// struct kvm_xsave's fixed part (region[1024]); KVM_GET_XSAVE2 may write more bytes after it
// (as many as KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) reports).
struct XsaveRegion {
  uint32_t region[1024];
};
static_assert(sizeof(XsaveRegion) == 4096);

inline constexpr unsigned long kIoctlGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
inline constexpr unsigned long kIoctlSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
inline constexpr unsigned long kIoctlGetCpuid2 = _IOWR(KVMIO, 0x91, CpuidHeader);
inline constexpr unsigned long kIoctlGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
inline constexpr unsigned long kIoctlGetXsave = _IOR(KVMIO, 0xa4, XsaveRegion);
inline constexpr unsigned long kIoctlSetXsave = _IOW(KVMIO, 0xa5, XsaveRegion);
inline constexpr unsigned long kIoctlGetXsave2 = _IOR(KVMIO, 0xcf, XsaveRegion);
inline constexpr unsigned long kIoctlSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kIoctlGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
// The values the kernel expects (same as the C headers produce).
static_assert(kIoctlGetSupportedCpuid == 0xc008ae05);
static_assert(kIoctlSetCpuid2 == 0x4008ae90);
static_assert(kIoctlSetMsrs == 0x4008ae89);
static_assert(kIoctlGetCpuid2 == 0xc008ae91);
static_assert(kIoctlGetXsave == 0x9000aea4);
static_assert(kIoctlSetXsave == 0x5000aea5);
static_assert(kIoctlGetXsave2 == 0x9000aecf);
static_assert(kIoctlGetMsrIndexList == 0xc004ae02);

}  // namespace supermachine::kvm
