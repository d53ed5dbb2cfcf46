# File: tests/bench/qemu_peer.py
# The QEMU peer's command line, shared by the benchmarks that measure us against QEMU
# `-M microvm` (net/net_bench.py, snapshot/qemu_restore.py): one place decides how the peer is
# configured, so the benchmarks compare us with the same QEMU and a fix reaches both.
"""QEMU -M microvm argv for the benchmarks' peer."""


def microvm_argv(kernel, mem_mib, serial, append, acpi=True, extra=()):
    """argv for qemu-system-x86_64 -M microvm on /dev/kvm: one vCPU, `mem_mib` MiB, no default
    devices, option ROMs or RTC, the guest's console on `serial` (a QEMU -serial value such as
    "stdio" or "file:PATH"), `kernel` booted directly with command line `append`, no reboot
    (the guest rebooting ends QEMU). `acpi=False` also drops ACPI (the net benchmark's guest
    has no use for it); `extra` is appended (drives, devices, -initrd, -qmp, -incoming)."""
    machine = "microvm,x-option-roms=off,rtc=off" + ("" if acpi else ",acpi=off")
    return ["qemu-system-x86_64", "-M", machine, "-enable-kvm", "-cpu", "host", "-smp", "1",
            "-m", str(mem_mib), "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", serial, "-no-reboot", "-kernel", kernel, "-append", append] + list(extra)
