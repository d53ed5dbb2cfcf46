// File: layout.h
// Every guest-physical address and x86 boot magic number the worker uses, each with what sits
// there and why (after Firecracker src/vmm/src/arch/x86_64/layout.rs). Low memory below 1 MiB
// holds the boot structures; the kernel loads at 1 MiB (bzImage) or its ELF physical address
// (vmlinux, normally 16 MiB); the virtio-mmio window sits in the 32-bit hole below 4 GiB.
#pragma once

#include <cstdint>

namespace supermachine::arch {

// --- Boot structures in low memory (all below the EBDA so the guest keeps them as RAM) ---
// Global descriptor table: null, null, code (selector 0x10 = __BOOT_CS), data (0x18 =
// __BOOT_DS), TSS (0x20). The 64-bit boot protocol and PVH both name those selectors.
inline constexpr uint64_t kGdtAddr = 0x500;
// An empty interrupt descriptor table: the kernel installs its own before enabling interrupts.
inline constexpr uint64_t kIdtAddr = 0x520;
// PVH hvm_start_info (PVH boot only); its e820-style memory map follows at kPvhMemmapAddr.
inline constexpr uint64_t kPvhStartInfoAddr = 0x6000;
inline constexpr uint64_t kPvhMemmapAddr = 0x6040;
// Linux "zero page" (struct boot_params) for the 64-bit boot protocol; rsi points here.
inline constexpr uint64_t kZeroPageAddr = 0x7000;
// Initial stack top for the boot vCPU (the kernel switches to its own stack almost at once).
inline constexpr uint64_t kBootStackTop = 0x8ff0;
// Identity-mapping page tables for long-mode entry: PML4, one PDPT, one PD of 2 MiB pages
// covering the first 1 GiB (kernel, zero page and command line all live there).
inline constexpr uint64_t kPml4Addr = 0x9000;
inline constexpr uint64_t kPdptAddr = 0xa000;
inline constexpr uint64_t kPdAddr = 0xb000;
// Kernel command line (NUL-terminated) and the most we accept: the 6.1 x86 kernel's
// COMMAND_LINE_SIZE is 2048, and 64 virtio_mmio.device= entries alone take ~2.3 KiB, so we
// reserve 64 KiB here and let the kernel's own limit (cmdline_size in the bzImage header)
// decide; see cmdline.h.
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMaxSize = 0x10000;
// Start of the Extended BIOS Data Area: RAM below it is usable, [EBDA, 1 MiB) is reserved
// (VGA hole/ROM area on a PC). The MP table lives in the last KiB below 640 KiB, one of the
// places Linux scans for the MP floating pointer.
inline constexpr uint64_t kEbdaStart = 0x9fc00;
inline constexpr uint64_t kMpTableAddr = 0x9fc00;
// First byte above the legacy hole: where the bzImage protected-mode kernel is loaded.
inline constexpr uint64_t kHighMemStart = 0x100000;

// --- 32-bit hole: MMIO and APIC ---
// Guest RAM stops here (3.25 GiB); the rest up to 4 GiB is MMIO. RAM beyond 3.25 GiB continues
// at 4 GiB.
inline constexpr uint64_t kMmioGapStart = 0xd0000000;
inline constexpr uint64_t kMmioGapEnd = 0x100000000;
// virtio-mmio devices: one 4 KiB window each, from the bottom of the gap.
inline constexpr uint64_t kVirtioMmioBase = 0xd0000000;
inline constexpr uint64_t kVirtioMmioSize = 0x1000;
// IOAPIC and local APIC MMIO (architectural defaults, in-kernel irqchip).
inline constexpr uint64_t kIoapicAddr = 0xfec00000;
inline constexpr uint64_t kLapicAddr = 0xfee00000;
// KVM_SET_TSS_ADDRESS: three pages Intel VMX needs for real-mode emulation, placed just below
// the BIOS area at the top of the 32-bit space where no guest RAM or MMIO lives.
inline constexpr uint64_t kKvmTssAddr = 0xfffbd000;

// --- Interrupts (IOAPIC pins = GSIs with the in-kernel irqchip) ---
inline constexpr uint32_t kSerialIrq = 4;     // COM1, as on a PC.
inline constexpr uint32_t kFirstVirtioIrq = 5;  // One pin per virtio device from here.
// The in-kernel IOAPIC has 24 pins; pins 0-4 are PIT/keyboard/cascade/COM2/COM1 on a PC,
// leaving 5..23 — 19 device interrupts. Devices beyond that share pins round-robin (virtio-mmio
// interrupts are edge-triggered here and the driver checks InterruptStatus, so sharing is safe).
inline constexpr uint32_t kIoapicPins = 24;
inline constexpr uint32_t kLastVirtioIrq = 23;

// --- Legacy I/O ports ---
inline constexpr uint16_t kCom1Port = 0x3f8;
inline constexpr uint16_t kI8042DataPort = 0x60;
inline constexpr uint16_t kI8042CommandPort = 0x64;

// --- Limits we enforce on the launch config ---
inline constexpr uint32_t kMaxVcpus = 32;  // The MP table's APIC ids stay below the IOAPIC id.
// Enough for ≥ 64 disks plus rng and later vsock/net/balloon: 128 windows = 512 KiB of the gap.
inline constexpr uint32_t kMaxVirtioDevices = 128;

// --- Boot protocol magic ---
inline constexpr uint32_t kPvhStartInfoMagic = 0x336ec578;  // hvm_start_info.magic
inline constexpr uint32_t kXenElfNotePhys32Entry = 18;      // XEN_ELFNOTE_PHYS32_ENTRY
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

}  // namespace supermachine::arch
