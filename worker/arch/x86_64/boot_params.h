// File: boot_params.h
// The guest's physical memory map (e820) and the Linux "zero page" (struct boot_params) for
// the 64-bit boot protocol (Documentation/arch/x86/boot.rst), plus PVH's hvm_start_info.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/memory/guest_memory.h"

namespace supermachine::arch {

struct E820Entry {
  uint64_t addr = 0;
  uint64_t size = 0;
  uint32_t type = 0;
  bool operator==(const E820Entry&) const = default;
};

// RAM [0, EBDA), reserved [EBDA, 1 MiB) (MP table, legacy hole), then RAM from 1 MiB over every
// guest memory region.
std::vector<E820Entry> BuildE820(const memory::GuestMemory& mem);

// Guest-physical layout of RAM for `mem_bytes`: below the MMIO gap, the rest from 4 GiB.
std::vector<memory::RegionSpec> RamRegions(uint64_t mem_bytes);

// Offsets in struct boot_params / setup_header we read or write.
namespace zp {
inline constexpr size_t kSize = 4096;
inline constexpr size_t kE820Entries = 0x1e8;
inline constexpr size_t kSetupHeader = 0x1f1;
inline constexpr size_t kSetupSects = 0x1f1;
inline constexpr size_t kBootFlag = 0x1fe;
inline constexpr size_t kJump = 0x200;
inline constexpr size_t kHeaderMagic = 0x202;
inline constexpr size_t kVersion = 0x206;
inline constexpr size_t kTypeOfLoader = 0x210;
inline constexpr size_t kLoadFlags = 0x211;
inline constexpr size_t kCode32Start = 0x214;
inline constexpr size_t kRamdiskImage = 0x218;
inline constexpr size_t kRamdiskSize = 0x21c;
inline constexpr size_t kHeapEndPtr = 0x224;
inline constexpr size_t kCmdLinePtr = 0x228;
inline constexpr size_t kKernelAlignment = 0x230;
inline constexpr size_t kRelocatable = 0x234;
inline constexpr size_t kXLoadFlags = 0x236;
inline constexpr size_t kCmdlineSize = 0x238;
inline constexpr size_t kPrefAddress = 0x258;
inline constexpr size_t kInitSize = 0x260;
inline constexpr size_t kSetupHeaderEnd = 0x290;  // edd_mbr_sig_buffer starts here.
inline constexpr size_t kE820Table = 0x2d0;
inline constexpr size_t kE820Max = 128;
inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
inline constexpr uint16_t kBootFlagMagic = 0xaa55;
inline constexpr uint8_t kLoaderUndefined = 0xff;
inline constexpr uint8_t kLoadedHigh = 0x01;
inline constexpr uint8_t kCanUseHeap = 0x80;
inline constexpr uint16_t kXlfKernel64 = 0x1;
}  // namespace zp

struct ZeroPageInput {
  // The bzImage's setup header bytes [0x1f1, end) or empty for an ELF vmlinux (we then write a
  // minimal header: boot flag, "HdrS", version).
  std::vector<uint8_t> setup_header;
  uint64_t cmdline_addr = 0;
  uint32_t cmdline_size = 0;  // Without the NUL.
  std::vector<E820Entry> e820;
};
// The 4096 zero-page bytes.
absl::StatusOr<std::vector<uint8_t>> BuildZeroPage(const ZeroPageInput& in);

// PVH: hvm_start_info (version 1) at kPvhStartInfoAddr, its memory map at kPvhMemmapAddr.
absl::Status WritePvhStartInfo(const memory::GuestMemory& mem, uint64_t cmdline_addr,
                               const std::vector<E820Entry>& e820);

}  // namespace supermachine::arch
