// File: seccomp_policy.cc
// The worker's run-time allowlist. Every entry is here because a path that runs after the
// first KVM_RUN needs it (vCPU threads, the event loop, devices, the control socket's
// snapshot, stopping passt, exit). How the list was found and how to extend it:
// docs/seccomp.md. Setup-only calls (open /dev/kvm, KVM_CREATE_*, memfd_create, posix_spawn of
// passt, bind/listen) are deliberately absent: they all happen before the filter.
#include "worker/jail/seccomp_policy.h"

#include <sys/socket.h>
#include <termios.h>

#include "worker/kvm/abi.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SM_HAS_ASAN_FEATURE 1  // clang's spelling of __SANITIZE_ADDRESS__
#endif
#endif

namespace supermachine::jail {

SeccompPolicy WorkerRunPolicy() {
  SeccompPolicy p;
  p.syscalls = {
      // Descriptors: virtio-blk I/O, serial output, eventfds, the event loop, sockets' data.
      {"read"}, {"write"}, {"readv"}, {"writev"}, {"pread64"}, {"pwrite64"}, {"preadv"},
      {"pwritev"}, {"preadv2"}, {"pwritev2"}, {"lseek"}, {"close"}, {"fcntl"}, {"dup"},
      {"fdatasync"}, {"fsync"}, {"fadvise64"},  // virtio-blk FLUSH, snapshot files.
      {"fstat"}, {"newfstatat"}, {"statx"},
      {"epoll_wait"}, {"epoll_pwait"}, {"epoll_ctl"}, {"epoll_create1"}, {"eventfd2"},
      {"poll"}, {"ppoll"},
      {"timerfd_settime"}, {"timerfd_gettime"},  // vsock handshake timeouts.
      // Snapshot (control socket `snapshot DIR`): mkdir, temp files renamed into place,
      // /proc/self/pagemap to skip untouched pages, SEEK_DATA over the sparse result. The
      // console file's rotation (vmm/rotating_log.cc): renameat FILE → FILE.1, openat a new
      // FILE, ftruncate when the rename is refused.
      {"openat"}, {"mkdir"}, {"mkdirat"}, {"unlink"}, {"unlinkat"}, {"rename"}, {"renameat"},
      {"renameat2"}, {"ftruncate"}, {"fallocate"}, {"getdents64"},
      // Memory: allocator, thread stacks; virtio-balloon drops guest pages with madvise
      // (restored VMs) or fallocate(PUNCH_HOLE) on the RAM memfd (booted VMs).
      {"mmap"}, {"munmap"}, {"mprotect"}, {"madvise"}, {"mremap"}, {"brk"},
      // Threads (vCPU threads start right before their first KVM_RUN), their kick signal,
      // synchronisation and clocks.
      {"clone"}, {"clone3"}, {"set_robust_list"}, {"rseq"}, {"futex"}, {"exit"},
      {"exit_group"}, {"gettid"}, {"getpid"}, {"tgkill"}, {"rt_sigprocmask"},
      {"rt_sigreturn"}, {"rt_sigaction"}, {"sigaltstack"}, {"sched_yield"},
      {"sched_getaffinity"}, {"nanosleep"}, {"clock_nanosleep"}, {"clock_gettime"},
      {"gettimeofday"}, {"restart_syscall"},
      // Host sockets: vsock connections (guest → host connects to PATH_<port>), the control
      // socket's clients, passt's socketpair. Only AF_UNIX sockets can be created.
      {"socket", AF_UNIX}, {"connect"}, {"accept4"}, {"sendto"}, {"recvfrom"}, {"sendmsg"},
      {"recvmsg"}, {"shutdown"}, {"getsockopt"}, {"setsockopt"}, {"getsockname"},
      {"getpeername"},
      {"getrandom"},  // virtio-rng.
      // Stopping passt at exit (ChildProcess: SIGTERM/SIGKILL to its group, then reap).
      {"kill"}, {"wait4"}, {"waitid"},
      {"ioctl"},  // Restricted to `ioctls` below by the filter builder.
  };
#if defined(__SANITIZE_ADDRESS__) || defined(SM_HAS_ASAN_FEATURE)
  // ASan builds only: the sanitizer runtime checks whether memory is readable by writing it
  // into a pipe (at thread creation, among others). Release builds never call pipe2 at run time.
  p.syscalls.push_back({"pipe2"});
#endif
  namespace k = ::supermachine::kvm;
  p.ioctls = {
      // The run loop and interrupts.
      {KVM_RUN, "KVM_RUN"},
      {KVM_IRQ_LINE, "KVM_IRQ_LINE"},  // Interrupts without irqfd (vm.cc PulseIrq).
      {KVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION"},  // Snapshot asks for KVM_CAP_XSAVE2.
      // Register dumps on a VMM error, and the snapshot's vCPU save (snapshot/vcpu_state.cc).
      {KVM_GET_REGS, "KVM_GET_REGS"},
      {KVM_GET_SREGS, "KVM_GET_SREGS"},
      {KVM_GET_FPU, "KVM_GET_FPU"},
      {KVM_GET_LAPIC, "KVM_GET_LAPIC"},
      {KVM_GET_MP_STATE, "KVM_GET_MP_STATE"},
      {KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS"},
      {KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS"},
      {KVM_GET_XCRS, "KVM_GET_XCRS"},
      {static_cast<uint32_t>(k::kIoctlGetXsave), "KVM_GET_XSAVE"},
      {static_cast<uint32_t>(k::kIoctlGetXsave2), "KVM_GET_XSAVE2"},
      {static_cast<uint32_t>(k::kIoctlGetMsrs), "KVM_GET_MSRS"},
      {static_cast<uint32_t>(k::kIoctlGetCpuid2), "KVM_GET_CPUID2"},
      {static_cast<uint32_t>(k::kIoctlGetMsrIndexList), "KVM_GET_MSR_INDEX_LIST"},
      {KVM_GET_TSC_KHZ, "KVM_GET_TSC_KHZ"},
      // The snapshot's VM-wide save (snapshot/vm_state.cc).
      {KVM_GET_CLOCK, "KVM_GET_CLOCK"},
      {KVM_GET_IRQCHIP, "KVM_GET_IRQCHIP"},
      {KVM_GET_PIT2, "KVM_GET_PIT2"},
      // isatty() on the console descriptor (glibc stdio); read-only terminal query.
      {TCGETS, "TCGETS"},
  };
  return p;
}

}  // namespace supermachine::jail
