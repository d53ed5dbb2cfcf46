// File: seccomp_filter_test.cc
// The worker's allowlist and its filter: the list holds what the run loop needs and none of the
// calls an attacker wants; the filter builds (every name is real); and, loaded in a forked
// child, it lets allowed calls through and kills the process with SIGSYS on anything else,
// including threads that existed before it was loaded and ioctls with other request numbers.
#include "worker/jail/seccomp_filter.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/jail/child.h"
#include "worker/jail/seccomp_policy.h"

namespace supermachine::jail {
namespace {

using testing::RunInChild;
using ::testing::HasSubstr;

bool HasSyscall(const SeccompPolicy& p, const std::string& name) {
  return std::any_of(p.syscalls.begin(), p.syscalls.end(),
                     [&](const SyscallRule& r) { return r.name == name; });
}
bool HasIoctl(const SeccompPolicy& p, uint32_t request) {
  return std::any_of(p.ioctls.begin(), p.ioctls.end(),
                     [&](const IoctlRule& r) { return r.request == request; });
}

// Loads the worker's filter in `mode`; a child that cannot exits 90 so the test says so.
int LoadOrExit(SeccompMode mode) {
  absl::Status st = InstallWorkerSeccomp(mode);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
    _exit(90);
  }
  return 0;
}

TEST(SeccompPolicy, AllowsWhatTheRunLoopNeeds) {
  const SeccompPolicy p = WorkerRunPolicy();
  for (const char* name :
       {"read", "write", "pread64", "pwrite64", "fdatasync", "epoll_pwait", "epoll_wait",
        "epoll_ctl", "futex", "clone3", "tgkill", "rt_sigreturn", "mmap", "munmap", "getrandom",
        "accept4", "connect", "sendto", "recvfrom", "exit_group", "ioctl", "openat", "rename",
        "fsync", "wait4", "kill", "timerfd_settime"}) {
    EXPECT_TRUE(HasSyscall(p, name)) << name;
  }
  for (uint32_t request : {static_cast<uint32_t>(KVM_RUN), static_cast<uint32_t>(KVM_GET_REGS),
                           static_cast<uint32_t>(KVM_GET_SREGS),
                           static_cast<uint32_t>(KVM_GET_IRQCHIP),
                           static_cast<uint32_t>(KVM_GET_CLOCK),
                           static_cast<uint32_t>(KVM_IRQ_LINE)}) {
    EXPECT_TRUE(HasIoctl(p, request)) << std::hex << request;
  }
}

TEST(SeccompPolicy, LeavesOutWhatAnAttackerWants) {
  const SeccompPolicy p = WorkerRunPolicy();
  for (const char* name :
       {"execve", "execveat", "ptrace", "mount", "umount2", "pivot_root", "chroot", "setuid",
        "setns", "unshare", "bpf", "init_module", "finit_module", "process_vm_writev",
        "open_by_handle_at", "memfd_create", "userfaultfd", "perf_event_open", "keyctl",
        "reboot", "kexec_load", "fork", "vfork", "bind", "listen"}) {
    EXPECT_FALSE(HasSyscall(p, name)) << name;
  }
  // Setup-only ioctls: no new VMs, vCPUs, memory slots or register writes once running.
  for (uint32_t request :
       {static_cast<uint32_t>(KVM_CREATE_VM), static_cast<uint32_t>(KVM_CREATE_VCPU),
        static_cast<uint32_t>(KVM_SET_USER_MEMORY_REGION), static_cast<uint32_t>(KVM_SET_REGS),
        static_cast<uint32_t>(KVM_SET_SREGS), static_cast<uint32_t>(KVM_IRQFD),
        static_cast<uint32_t>(KVM_IOEVENTFD), static_cast<uint32_t>(TIOCSTI)}) {
    EXPECT_FALSE(HasIoctl(p, request)) << std::hex << request;
  }
}

TEST(SeccompFilter, BuildsFromTheWorkerPolicy) {
  auto filter = SeccompFilter::Build(WorkerRunPolicy(), SeccompMode::kKill);
  ASSERT_TRUE(filter.ok()) << filter.status();
  auto bpf = filter->ExportBpf();
  ASSERT_TRUE(bpf.ok()) << bpf.status();
  // struct sock_filter is 8 bytes; a filter this size has dozens of instructions.
  EXPECT_EQ(bpf->size() % 8, 0u);
  EXPECT_GT(bpf->size() / 8, 50u);
}

TEST(SeccompFilter, RefusesAnUnknownSyscallName) {
  SeccompPolicy p;
  p.syscalls = {{"read"}, {"not_a_syscall"}};
  auto filter = SeccompFilter::Build(p, SeccompMode::kKill);
  ASSERT_FALSE(filter.ok());
  EXPECT_THAT(filter.status().message(), HasSubstr("not_a_syscall"));
}

TEST(SeccompFilter, ModesParseAndNameEachOther) {
  EXPECT_EQ(*ParseSeccompMode("on"), SeccompMode::kKill);
  EXPECT_EQ(*ParseSeccompMode("off"), SeccompMode::kOff);
  EXPECT_EQ(*ParseSeccompMode("trap"), SeccompMode::kTrap);
  EXPECT_FALSE(ParseSeccompMode("yes").ok());
  EXPECT_STREQ(SeccompModeName(SeccompMode::kKill), "on");
  EXPECT_EQ(SyscallName(SYS_getppid), "getppid");
}

TEST(SeccompFilterLoaded, AllowedCallsWorkAndTheProcessExitsNormally) {
  auto end = RunInChild([] {
    LoadOrExit(SeccompMode::kKill);
    if (getpid() <= 0) return 1;
    const int efd = eventfd(0, EFD_CLOEXEC);  // The irqfd/ioeventfd kind of descriptor.
    if (efd < 0) return 2;
    uint64_t v = 1;
    if (write(efd, &v, sizeof(v)) != sizeof(v)) return 3;
    if (read(efd, &v, sizeof(v)) != sizeof(v) || v != 1) return 4;
    // An AF_UNIX socket may be created (vsock host connections).
    const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return 5;
    close(s);
    // KVM_RUN is allowed: on a bad descriptor it is the kernel, not the filter, that says no.
    if (ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF) return 6;
    std::thread t([] {});  // Threads can still be made (vCPU threads start after the filter).
    t.join();
    return 0;
  });
  EXPECT_FALSE(end.signaled) << "signal " << end.signal;
  EXPECT_EQ(end.code, 0);
}

TEST(SeccompFilterLoaded, UnlistedSyscallKillsWithSigsys) {
  auto end = RunInChild([] {
    LoadOrExit(SeccompMode::kKill);
    syscall(SYS_getppid);  // Not on the list.
    return 0;
  });
  ASSERT_TRUE(end.signaled) << "exited " << end.code;
  EXPECT_EQ(end.signal, SIGSYS);
}

TEST(SeccompFilterLoaded, ExecveKillsWithSigsys) {
  auto end = RunInChild([] {
    LoadOrExit(SeccompMode::kKill);
    char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
    execve("/bin/true", argv, nullptr);
    return 0;
  });
  ASSERT_TRUE(end.signaled) << "exited " << end.code;
  EXPECT_EQ(end.signal, SIGSYS);
}

TEST(SeccompFilterLoaded, IoctlWithAnUnlistedRequestKillsWithSigsys) {
  auto end = RunInChild([] {
    LoadOrExit(SeccompMode::kKill);
    ioctl(-1, KVM_CREATE_VM, 0);  // A setup-only request.
    return 0;
  });
  ASSERT_TRUE(end.signaled) << "exited " << end.code;
  EXPECT_EQ(end.signal, SIGSYS);
}

TEST(SeccompFilterLoaded, InternetSocketKillsWithSigsys) {
  auto end = RunInChild([] {
    LoadOrExit(SeccompMode::kKill);
    socket(AF_INET, SOCK_STREAM, 0);
    return 0;
  });
  ASSERT_TRUE(end.signaled) << "exited " << end.code;
  EXPECT_EQ(end.signal, SIGSYS);
}

TEST(SeccompFilterLoaded, AppliesToThreadsThatExistedBeforeTheLoad) {
  auto end = RunInChild([] {
    std::atomic<bool> go{false};
    std::thread t([&] {
      while (!go.load()) {
        usleep(1000);
      }
      syscall(SYS_getppid);
    });
    LoadOrExit(SeccompMode::kKill);
    go.store(true);
    t.join();
    return 0;  // Only reached if the thread's call went through.
  });
  ASSERT_TRUE(end.signaled) << "exited " << end.code;
  EXPECT_EQ(end.signal, SIGSYS);
}

TEST(SeccompFilterLoaded, TrapModeNamesTheSyscallThenDiesBySigsys) {
  test_support::TempDir dir;
  const std::string err = dir.Join("stderr");
  auto end = RunInChild([&] {
    const int fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, STDERR_FILENO);
    LoadOrExit(SeccompMode::kTrap);
    syscall(SYS_getppid);
    return 0;
  });
  ASSERT_TRUE(end.signaled) << "exited " << end.code;
  EXPECT_EQ(end.signal, SIGSYS);
  EXPECT_THAT(test_support::ReadFileOrDie(err),
              HasSubstr("seccomp violation: syscall " + std::to_string(SYS_getppid) +
                        " (getppid)"));
}

}  // namespace
}  // namespace supermachine::jail
