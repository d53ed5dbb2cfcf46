// File: guest-agent/init/power.h
// Ending the VM from inside: flush, then reset.
#pragma once

namespace supermachine::agent {

// Syncs filesystems and resets the machine with reboot(RB_AUTOBOOT). The guest kernel boots
// with `reboot=t` (triple fault), which needs neither ACPI nor a keyboard controller; the VMM
// treats the reset as "VM ended" (QEMU: -no-reboot). Returns only if reboot() fails.
void EndVm();

}  // namespace supermachine::agent
