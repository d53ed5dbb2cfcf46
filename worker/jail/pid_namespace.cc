// File: pid_namespace.cc
// The keeper/worker split of pid_namespace.h.
#include "worker/jail/pid_namespace.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::jail {
namespace {

// The signals the keeper relays to the worker (what the daemon and a terminal send to stop it).
void AddRelayedSignals(sigset_t* set) {
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGHUP);
}

// Ends the keeper the way the worker ended. Never returns.
[[noreturn]] void EndLike(int status) {
  if (WIFEXITED(status)) {
    _exit(WEXITSTATUS(status));
  }
  const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
  // The worker's own end already left whatever core the host collects; the keeper's re-raise
  // of, say, SIGSYS must not leave a second, useless one.
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  signal(sig, SIG_DFL);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, sig);
  sigprocmask(SIG_UNBLOCK, &only, nullptr);
  raise(sig);
  // A signal whose default is to be ignored (SIGCHLD, SIGWINCH, ...) does not end the keeper.
  _exit(128 + sig);
}

// The keeper's whole life: relay stop signals, wait for the worker, end like it.
[[noreturn]] void Keep(pid_t worker) {
  sigset_t wait_set;
  sigemptyset(&wait_set);
  AddRelayedSignals(&wait_set);
  sigaddset(&wait_set, SIGCHLD);
  for (;;) {
    siginfo_t info{};
    const int sig = sigwaitinfo(&wait_set, &info);
    if (sig < 0) {
      continue;  // EINTR
    }
    if (sig != SIGCHLD) {
      kill(worker, sig);
      continue;
    }
    int status = 0;
    const pid_t r = waitpid(worker, &status, WNOHANG);
    if (r == worker) {
      EndLike(status);
    }
    if (r < 0 && errno == ECHILD) {
      _exit(1);  // Cannot happen: the worker is our only child.
    }
  }
}

}  // namespace

absl::Status EnterNewPidNamespace() {
  if (unshare(CLONE_NEWPID) != 0) {
    return base::ErrnoToStatus(errno, "unshare(CLONE_NEWPID) for the worker's PID namespace");
  }
  // The worker learns of a keeper that died before PR_SET_PDEATHSIG took effect from this pipe:
  // the keeper holds the write end for life.
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return base::ErrnoToStatus(errno, "pipe2 for the PID namespace keeper");
  }
  base::UniqueFd alive_r(pipe_fds[0]);
  base::UniqueFd alive_w(pipe_fds[1]);
  // Blocked before the fork so that no stop signal falls between the fork and the keeper's
  // first sigwaitinfo. The worker keeps the stop signals blocked too: as PID 1 of its
  // namespace, a stop signal it neither handles nor blocks would be dropped by the kernel;
  // blocked, it stays pending until the worker's signalfd reads it.
  sigset_t keeper_set;
  sigemptyset(&keeper_set);
  AddRelayedSignals(&keeper_set);
  sigaddset(&keeper_set, SIGCHLD);
  sigset_t old_mask;
  if (sigprocmask(SIG_BLOCK, &keeper_set, &old_mask) != 0) {
    return base::ErrnoToStatus(errno, "sigprocmask for the PID namespace keeper");
  }
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    return base::ErrnoToStatus(err, "fork into the worker's PID namespace");
  }
  if (pid > 0) {
    alive_r.Reset();
    Keep(pid);
  }
  // The worker proper, PID 1 of the new namespace.
  alive_w.Reset();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    _exit(1);
  }
  pollfd p{.fd = alive_r.get(), .events = POLLIN, .revents = 0};
  if (poll(&p, 1, 0) != 0) {
    _exit(1);  // The keeper is gone already (end of file on the pipe); so is our reason to run.
  }
  alive_r.Reset();
  sigset_t restore = old_mask;
  AddRelayedSignals(&restore);
  sigprocmask(SIG_SETMASK, &restore, nullptr);
  return absl::OkStatus();
}

}  // namespace supermachine::jail
