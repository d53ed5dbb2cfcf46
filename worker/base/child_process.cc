// File: child_process.cc
#include "worker/base/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/base/status_macros.h"

extern char** environ;

namespace supermachine::base {
namespace {

ExitStatus FromWaitStatus(int wstatus) {
  ExitStatus st;
  if (WIFSIGNALED(wstatus)) {
    st.signaled = true;
    st.signal = WTERMSIG(wstatus);
  } else {
    st.code = WEXITSTATUS(wstatus);
  }
  return st;
}

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) {
    out.push_back(const_cast<char*>(s.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (signaled) {
    return absl::StrCat("killed by signal ", signal, " (", strsignal(signal), ")");
  }
  return absl::StrCat("exited ", code);
}

absl::StatusOr<ChildProcess> ChildProcess::Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) {
    return absl::InvalidArgumentError("spawn: empty argv");
  }
  // posix_spawn (vfork-like in glibc) instead of fork(): safe in a multi-threaded daemon and
  // cheap for a large parent.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  if (options.new_session) {
    flags |= POSIX_SPAWN_SETSID;
  }
  posix_spawnattr_setflags(&attr, flags);

  if (options.stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, options.stdin_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  if (options.stdout_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, options.stdout_fd, 1);
  }
  if (options.stderr_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, options.stderr_fd, 2);
  }

  std::vector<char*> argv = CStrings(options.argv);
  std::vector<char*> envp;
  if (options.env) {
    envp = CStrings(*options.env);
  }
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(),
                        options.env ? envp.data() : environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return ErrnoToStatus(rc, absl::StrCat("spawn '", absl::StrJoin(options.argv, " "), "'"));
  }
  return ChildProcess(pid, options.new_session);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), group_(other.group_), exit_(other.exit_) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    KillAndReap();
    pid_ = std::exchange(other.pid_, -1);
    group_ = other.group_;
    exit_ = other.exit_;
  }
  return *this;
}

ChildProcess::~ChildProcess() { KillAndReap(); }

pid_t ChildProcess::Release() {
  const pid_t pid = running() ? pid_ : -1;
  pid_ = -1;
  exit_.reset();
  return pid;
}

void ChildProcess::KillAndReap() {
  if (running()) {
    (void)Signal(SIGKILL);
    (void)Wait();
  }
  pid_ = -1;
}

absl::StatusOr<ExitStatus> ChildProcess::Wait() {
  if (exit_) {
    return *exit_;
  }
  if (pid_ <= 0) {
    return absl::FailedPreconditionError("wait: no child");
  }
  int wstatus = 0;
  while (::waitpid(pid_, &wstatus, 0) < 0) {
    if (errno != EINTR) {
      return ErrnoToStatus(errno, absl::StrCat("waitpid ", pid_));
    }
  }
  exit_ = FromWaitStatus(wstatus);
  return *exit_;
}

std::optional<ExitStatus> ChildProcess::TryWait() {
  if (exit_ || pid_ <= 0) {
    return exit_;
  }
  int wstatus = 0;
  pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
  if (r == pid_) {
    exit_ = FromWaitStatus(wstatus);
  }
  return exit_;
}

absl::StatusOr<ExitStatus> ChildProcess::WaitFor(absl::Duration timeout) {
  // Polling keeps this free of SIGCHLD handlers (which belong to main, not a library);
  // the step grows so short-lived children are noticed quickly.
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration step = absl::Milliseconds(1);
  while (true) {
    if (auto st = TryWait()) {
      return *st;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid_, " still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(step);
    step = std::min(step * 2, absl::Milliseconds(50));
  }
}

absl::Status ChildProcess::Signal(int sig) {
  if (!running()) {
    return absl::FailedPreconditionError("signal: process is not running");
  }
  int rc = group_ ? ::kill(-pid_, sig) : ::kill(pid_, sig);
  if (rc != 0) {
    return ErrnoToStatus(errno, absl::StrCat("kill ", pid_));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitStatus> ChildProcess::Terminate(absl::Duration grace) {
  if (!running()) {
    return Wait();
  }
  (void)Signal(SIGTERM);
  auto st = WaitFor(grace);
  if (st.ok()) {
    return st;
  }
  (void)Signal(SIGKILL);
  return Wait();
}

}  // namespace supermachine::base
