// File: mptable.h
// Intel MultiProcessor Specification 1.4 table: how a guest without ACPI learns its CPUs, the
// IOAPIC and how ISA interrupts are wired. Linux finds the floating pointer in the last KiB
// below 640 KiB (kMpTableAddr). After Firecracker src/vmm/src/arch/x86_64/mptable.rs.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/memory/guest_memory.h"

namespace supermachine::arch {

// The bytes of the floating pointer + configuration table for `vcpu_count` CPUs, to be placed
// at kMpTableAddr. InvalidArgument if there are too many CPUs for the space below 1 MiB.
absl::StatusOr<std::vector<uint8_t>> BuildMpTable(uint32_t vcpu_count);
absl::Status WriteMpTable(const memory::GuestMemory& mem, uint32_t vcpu_count);

}  // namespace supermachine::arch
