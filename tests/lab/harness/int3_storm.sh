#!/bin/sh
# File: tests/lab/harness/int3_storm.sh
# Runs inside the emulated lab (harness_test.sh): makes L1's vCPUs look like the text-patching
# livelock tests/lab/run watches for (a vCPU in the int3 handler at every sample) without
# wedging anything: an unoptimized kprobe in the middle of a function (an int3, not an ftrace
# call) that two busy loops hit all the time. Prints "int3 storm" once it runs; never ends.
set -u
tracing=/sys/kernel/tracing
mount -t tracefs nodev "${tracing}" || exit 10
# Optimized kprobes turn the int3 into a jump after a while; the storm needs the int3.
echo 0 >/proc/sys/debug/kprobes-optimization || exit 11
# An offset past the function's ftrace call, on an instruction boundary (the kernel refuses
# others): a probe at the entry would use ftrace, not int3.
placed=""
for off in 10 9 8 11 12 13 14 5; do
  if echo "p:sm_int3_storm __task_pid_nr_ns+${off}" >"${tracing}/kprobe_events" 2>/dev/null; then
    placed=${off}
    break
  fi
done
[ -n "${placed}" ] || { echo "int3_storm: no kprobe offset accepted"; exit 12; }
echo 0 >"${tracing}/tracing_on"
echo 1 >"${tracing}/events/kprobes/sm_int3_storm/enable" || exit 13
for _ in 1 2; do
  python3 -c 'import os
while True: os.getppid()' &
done
echo "int3 storm (kprobe at __task_pid_nr_ns+${placed})"
wait
