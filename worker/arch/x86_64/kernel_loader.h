// File: kernel_loader.h
// Loads a guest kernel into guest memory: an ELF vmlinux (PVH entry from its Xen
// PHYS32_ENTRY note, else the 64-bit Linux entry at e_entry) or a bzImage (64-bit boot
// protocol, protected-mode kernel at 1 MiB, entry at +0x200). Everything read from the file is
// checked against the file and guest memory bounds before it is used.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/base/unique_fd.h"
#include "worker/memory/guest_memory.h"

namespace supermachine::arch {

enum class EntryKind {
  kPvh,      // 32-bit protected mode, ebx = hvm_start_info.
  kLinux64,  // Long mode, rsi = zero page.
};

struct LoadedKernel {
  EntryKind entry_kind = EntryKind::kLinux64;
  uint64_t entry = 0;
  uint64_t end = 0;  // One past the highest guest address the image occupies.
  // bzImage only: the setup header bytes [0x1f1, end) copied into the zero page.
  std::vector<uint8_t> setup_header;
  // The kernel's own command-line limit without the NUL: bzImage's cmdline_size, or for an
  // unstripped vmlinux the size of its `boot_command_line` buffer minus one. 0 when unknown.
  uint32_t cmdline_limit = 0;
  std::string format;  // "ELF vmlinux (PVH)", "ELF vmlinux", "bzImage" — for logs.
};

// Checks the file is a kernel we can boot, without touching guest memory (for early
// validation of the launch config): NotFound / PermissionDenied / InvalidArgument.
absl::StatusOr<std::string> ProbeKernel(const std::string& path);

// Loads it. `prefer_pvh`: use the PVH entry when the ELF has one.
absl::StatusOr<LoadedKernel> LoadKernel(const std::string& path, const memory::GuestMemory& mem,
                                        bool prefer_pvh = true);

}  // namespace supermachine::arch
