// File: pid_namespace_test.cc
// EnterNewPidNamespace in a forked child (it forks again and needs root, as CI runs unit
// tests): the worker side is PID 1 of a new namespace, the keeper ends exactly as the worker
// did (exit code or signal), relays SIGTERM, and a SIGKILLed keeper takes the worker with it.
#include "worker/jail/pid_namespace.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/unit/jail/child.h"
#include "worker/jail/seccomp_filter.h"

namespace supermachine::jail {
namespace {

using testing::ChildEnd;
using testing::RunInChild;

class PidNamespace : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the PID namespace needs CAP_SYS_ADMIN (CI runs unit tests as root)";
  }
};

// The host's /proc was mounted in the initial namespace, so /proc/self names a process by its
// host pid even from inside the new namespace.
pid_t HostPidOfSelf() {
  char buf[32] = {};
  const ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);
  return n > 0 ? static_cast<pid_t>(std::stoi(std::string(buf, static_cast<size_t>(n)))) : -1;
}

bool ProcessGoneOrZombie(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) {
    return true;
  }
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

TEST_F(PidNamespace, WorkerIsPidOneAndTheKeeperExitsWithItsCode) {
  const ChildEnd end = RunInChild([] {
    if (!EnterNewPidNamespace().ok()) {
      return 90;
    }
    return getpid() == 1 ? 7 : 91;  // Only the worker side gets here.
  });
  EXPECT_FALSE(end.signaled);
  EXPECT_EQ(end.code, 7);
}

TEST_F(PidNamespace, TheKeeperDiesByTheWorkersSignal) {
  const ChildEnd end = RunInChild([] {
    if (!EnterNewPidNamespace().ok()) {
      return 90;
    }
    // A seccomp violation, as it ends a real worker. (A plain raise() would not do: the
    // kernel drops a default-action signal sent to a namespace's PID 1; the seccomp kill, like
    // a fault, is forced.)
    if (!InstallWorkerSeccomp(SeccompMode::kKill).ok()) {
      return 94;
    }
    char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
    execve("/bin/true", argv, nullptr);
    return 92;
  });
  EXPECT_TRUE(end.signaled) << "exit code " << end.code;
  EXPECT_EQ(end.signal, SIGSYS);
}

TEST_F(PidNamespace, SigtermToTheKeeperReachesTheWorker) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t keeper = fork();
  ASSERT_GE(keeper, 0);
  if (keeper == 0) {
    close(ready[0]);
    if (!EnterNewPidNamespace().ok()) {
      _exit(90);
    }
    // The worker: stop signals arrive blocked (see pid_namespace.cc); take SIGTERM as the
    // worker's signalfd would.
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    (void)!write(ready[1], "r", 1);
    int sig = 0;
    sigwait(&term, &sig);
    _exit(sig == SIGTERM ? 9 : 93);
  }
  close(ready[1]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  ASSERT_EQ(kill(keeper, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(keeper, &status, 0), keeper);
  ASSERT_TRUE(WIFEXITED(status)) << "keeper died by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 9);
}

TEST_F(PidNamespace, AKilledKeeperTakesTheWorkerWithIt) {
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const pid_t keeper = fork();
  ASSERT_GE(keeper, 0);
  if (keeper == 0) {
    close(report[0]);
    if (!EnterNewPidNamespace().ok()) {
      _exit(90);
    }
    const pid_t host_pid = HostPidOfSelf();
    (void)!write(report[1], &host_pid, sizeof(host_pid));
    for (;;) {
      pause();
    }
  }
  close(report[1]);
  pid_t worker = -1;
  ASSERT_EQ(read(report[0], &worker, sizeof(worker)), static_cast<ssize_t>(sizeof(worker)));
  close(report[0]);
  ASSERT_GT(worker, 0);
  EXPECT_FALSE(ProcessGoneOrZombie(worker));
  ASSERT_EQ(kill(keeper, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(keeper, &status, 0), keeper);
  // The worker's SIGKILL comes from the kernel as the keeper exits; it is then reaped by
  // whichever process adopts it (not us), so "gone or a zombie" is the end state. Generous
  // bound for a loaded machine; it normally takes microseconds.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!ProcessGoneOrZombie(worker) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(ProcessGoneOrZombie(worker)) << "worker " << worker << " outlived its keeper";
  if (!ProcessGoneOrZombie(worker)) {
    kill(worker, SIGKILL);  // Leave no stray process (it would hold the test's output open).
  }
}

}  // namespace
}  // namespace supermachine::jail
