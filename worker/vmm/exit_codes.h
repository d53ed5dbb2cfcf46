// File: exit_codes.h
// supermachine-worker's process exit codes: how a VM ended, for the daemon to map to the typed
// end cause users see. Documented in docs/worker.md; never renumber.
#pragma once

namespace supermachine::vmm {

enum ExitCode : int {
  // The guest reset itself by triple fault — how Linux reboots with `reboot=t`, which we boot
  // with, so this is the normal "guest finished" end (also a guest kernel panic with
  // panic=-1). KVM cannot tell a deliberate triple fault from a crash.
  kExitGuestReset = 0,
  // Bad launch config or setup failure; no vCPU ever ran (message on stderr).
  kExitBadInput = 2,
  // KVM or VMM error while the guest ran (exit reason + registers on stderr).
  kExitVmmError = 3,
  // The guest reset through the i8042 controller (port 0x64, command 0xfe; `reboot=k`).
  kExitI8042Reset = 4,
  // KVM reported a system event: guest shutdown (ACPI/PSCI-style poweroff).
  kExitGuestShutdown = 5,
  // Stopped by SIGTERM/SIGINT/SIGHUP from the host: a clean stop, all threads joined.
  kExitStopped = 6,
};

}  // namespace supermachine::vmm
