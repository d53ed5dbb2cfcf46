// File: boot_params.cc
// e820, zero page and PVH start_info construction.
#include "worker/arch/x86_64/boot_params.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/arch/x86_64/layout.h"
#include "worker/base/status_macros.h"

namespace supermachine::arch {
namespace {

template <typename T>
void Put(std::vector<uint8_t>* page, size_t offset, T value) {
  std::memcpy(page->data() + offset, &value, sizeof(T));
}

#pragma pack(push, 1)
struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
#pragma pack(pop)
static_assert(sizeof(HvmStartInfo) == 56);
static_assert(sizeof(HvmMemmapEntry) == 24);
static_assert(kPvhStartInfoAddr + sizeof(HvmStartInfo) <= kPvhMemmapAddr);

}  // namespace

std::vector<memory::RegionSpec> RamRegions(uint64_t mem_bytes) {
  if (mem_bytes <= kMmioGapStart) {
    return {{.guest_base = 0, .size = mem_bytes}};
  }
  return {{.guest_base = 0, .size = kMmioGapStart},
          {.guest_base = kMmioGapEnd, .size = mem_bytes - kMmioGapStart}};
}

std::vector<E820Entry> BuildE820(const memory::GuestMemory& mem) {
  std::vector<E820Entry> out;
  out.push_back({.addr = 0, .size = kEbdaStart, .type = kE820Ram});
  out.push_back({.addr = kEbdaStart, .size = kHighMemStart - kEbdaStart, .type = kE820Reserved});
  for (const memory::Region& r : mem.regions()) {
    uint64_t start = r.guest_base < kHighMemStart ? kHighMemStart : r.guest_base;
    uint64_t end = r.guest_base + r.size;
    if (end > start) {
      out.push_back({.addr = start, .size = end - start, .type = kE820Ram});
    }
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> BuildZeroPage(const ZeroPageInput& in) {
  if (in.e820.size() > zp::kE820Max) {
    return absl::InvalidArgumentError("zero page: too many e820 entries");
  }
  if (in.setup_header.size() > zp::kSetupHeaderEnd - zp::kSetupHeader) {
    return absl::InvalidArgumentError("zero page: setup header larger than boot_params allows");
  }
  std::vector<uint8_t> page(zp::kSize, 0);
  if (!in.setup_header.empty()) {
    std::memcpy(page.data() + zp::kSetupHeader, in.setup_header.data(), in.setup_header.size());
  } else {
    Put<uint16_t>(&page, zp::kBootFlag, zp::kBootFlagMagic);
    Put<uint32_t>(&page, zp::kHeaderMagic, zp::kHdrSMagic);
    // The alignment the kernel assumes it was loaded at when it is not relocated.
    Put<uint32_t>(&page, zp::kKernelAlignment, 0x01000000);
  }
  page[zp::kTypeOfLoader] = zp::kLoaderUndefined;
  page[zp::kLoadFlags] |= zp::kLoadedHigh | zp::kCanUseHeap;
  // The real-mode heap is never used in 64-bit entry, but CAN_USE_HEAP promises a valid end.
  Put<uint16_t>(&page, zp::kHeapEndPtr, 0xfe00);
  Put<uint32_t>(&page, zp::kCmdLinePtr, static_cast<uint32_t>(in.cmdline_addr));
  Put<uint32_t>(&page, zp::kCmdlineSize, in.cmdline_size);
  Put<uint32_t>(&page, zp::kRamdiskImage, 0);
  Put<uint32_t>(&page, zp::kRamdiskSize, 0);
  page[zp::kE820Entries] = static_cast<uint8_t>(in.e820.size());
  for (size_t i = 0; i < in.e820.size(); ++i) {
    const size_t off = zp::kE820Table + i * 20;  // struct boot_e820_entry is packed, 20 bytes.
    Put<uint64_t>(&page, off, in.e820[i].addr);
    Put<uint64_t>(&page, off + 8, in.e820[i].size);
    Put<uint32_t>(&page, off + 16, in.e820[i].type);
  }
  return page;
}

absl::Status WritePvhStartInfo(const memory::GuestMemory& mem, uint64_t cmdline_addr,
                               const std::vector<E820Entry>& e820) {
  // The memmap must end before the zero page area; each entry is 24 bytes.
  if (kPvhMemmapAddr + e820.size() * sizeof(HvmMemmapEntry) > kZeroPageAddr) {
    return absl::InvalidArgumentError("PVH memory map too large");
  }
  HvmStartInfo info{};
  info.magic = kPvhStartInfoMagic;
  info.version = 1;  // Version 1 adds memmap_*; Linux >= 4.20 reads it instead of e820 hypercalls.
  info.cmdline_paddr = cmdline_addr;
  info.memmap_paddr = kPvhMemmapAddr;
  info.memmap_entries = static_cast<uint32_t>(e820.size());
  SM_RETURN_IF_ERROR(mem.WriteObj(kPvhStartInfoAddr, info));
  for (size_t i = 0; i < e820.size(); ++i) {
    HvmMemmapEntry entry{};
    entry.addr = e820[i].addr;
    entry.size = e820[i].size;
    entry.type = e820[i].type;
    SM_RETURN_IF_ERROR(mem.WriteObj(kPvhMemmapAddr + i * sizeof(HvmMemmapEntry), entry));
  }
  return absl::OkStatus();
}

}  // namespace supermachine::arch
