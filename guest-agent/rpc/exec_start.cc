// File: guest-agent/rpc/exec_start.cc
// Starting an exec'd command (see exec_start.h). Everything the child needs is prepared before
// fork(); the child only makes syscalls (the agent is multi-threaded) and reports a failure
// before execve through a close-on-exec pipe, so the host gets "chdir /x: No such file or
// directory" instead of a bare exit 127.
#include "guest-agent/rpc/exec_start.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <linux/close_range.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "guest-agent/process/users.h"

namespace supermachine::agent::rpc {
namespace {

std::string EnvKey(const std::string& entry) { return entry.substr(0, entry.find('=')); }

bool HasKey(const std::vector<std::string>& env, const std::string& key) {
  return std::any_of(env.begin(), env.end(),
                     [&](const std::string& e) { return EnvKey(e) == key; });
}

std::string GetEnv(const std::vector<std::string>& env, const std::string& key) {
  for (const std::string& e : env) {
    if (EnvKey(e) == key) {
      return e.substr(key.size() + 1);
    }
  }
  return "";
}

}  // namespace

std::vector<std::string> MergeEnv(const std::vector<std::string>& defaults,
                                  const v1::ExecRequest& request) {
  std::vector<std::string> env;
  if (!request.replace_env()) {
    env = defaults;
  }
  for (const std::string& entry : request.env()) {
    const std::string key = EnvKey(entry);
    auto it = std::find_if(env.begin(), env.end(),
                           [&](const std::string& e) { return EnvKey(e) == key; });
    if (it != env.end()) {
      *it = entry;
    } else {
      env.push_back(entry);
    }
  }
  return env;
}

std::string LookPath(const std::string& name, const std::string& path, int* err) {
  if (name.find('/') != std::string::npos) {
    return name;
  }
  *err = ENOENT;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) {
      end = path.size();
    }
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) {
      dir = ".";
    }
    std::string candidate = std::move(dir);
    candidate += '/';
    candidate += name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0) {
        return candidate;
      }
      *err = EACCES;
    }
    start = end + 1;
  }
  return "";
}

namespace {

// What the child reports through the CLOEXEC error pipe when it fails before execve.
struct ChildFailure {
  int stage = 0;
  int err = 0;
};
enum Stage : int { kStageUser = 1, kStageCwd, kStageExec, kStageTty, kStageSetsid, kStageStdio };

const char* StageName(int stage) {
  switch (stage) {
    case kStageUser:
      return "switch user";
    case kStageCwd:
      return "chdir";
    case kStageExec:
      return "execve";
    case kStageTty:
      return "controlling tty";
    case kStageSetsid:
      return "setsid";
    case kStageStdio:
      return "set up stdio";
    default:
      return "start";
  }
}

// Everything the child needs, prepared before fork: the child only makes syscalls.
struct ChildPlan {
  std::string path;
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  std::optional<ResolvedUser> user;  // nullopt: keep the agent's identity.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  bool tty = false;
  int error_pipe = -1;
};

[[noreturn]] void ChildFail(int pipe_fd, int stage, int err) {
  ChildFailure f{stage, err};
  (void)!::write(pipe_fd, &f, sizeof(f));
  ::_exit(err == ENOENT ? 127 : 126);
}

[[noreturn]] void RunChild(const ChildPlan& plan, char* const* argv, char* const* envp) {
  // Signals: default dispositions and an empty mask, whatever PID 1 uses for itself (tini).
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) {
      ::sigaction(sig, &dfl, nullptr);
    }
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // Own session and process group: signals and the timeout reach the whole command tree.
  if (::setsid() < 0) {
    ChildFail(plan.error_pipe, kStageSetsid, errno);
  }
  if (plan.tty && ::ioctl(plan.stdout_fd, TIOCSCTTY, 0) != 0) {
    ChildFail(plan.error_pipe, kStageTty, errno);
  }
  // Copies above 2 first: when PID 1 started without fds 0-2 our pipes may sit there, and a
  // dup2 onto itself would keep close-on-exec (or one dup2 would clobber the next's source).
  const int in = ::fcntl(plan.stdin_fd, F_DUPFD_CLOEXEC, 3);
  const int out = ::fcntl(plan.stdout_fd, F_DUPFD_CLOEXEC, 3);
  const int err = ::fcntl(plan.stderr_fd, F_DUPFD_CLOEXEC, 3);
  if (in < 0 || out < 0 || err < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 ||
      ::dup2(err, 2) < 0) {
    ChildFail(plan.error_pipe, kStageStdio, errno);
  }
  // Only stdio reaches the command: whatever else PID 1 holds without O_CLOEXEC (its own
  // inherited fds, other components') is marked close-on-exec (not closed: the error pipe
  // must live until execve).
  if (::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
    struct rlimit lim {};
    const rlim_t max = ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 65536
                           ? lim.rlim_cur
                           : 65536;
    for (int fd = 3; fd < static_cast<int>(max); ++fd) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  if (plan.user) {
    if (int rc = ApplyUser(*plan.user); rc != 0) {
      ChildFail(plan.error_pipe, kStageUser, -rc);
    }
  }
  if (::chdir(plan.cwd.c_str()) != 0) {
    ChildFail(plan.error_pipe, kStageCwd, errno);
  }
  ::execve(plan.path.c_str(), argv, envp);
  ChildFail(plan.error_pipe, kStageExec, errno);
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) {
    out.push_back(const_cast<char*>(s.c_str()));
  }
  out.push_back(nullptr);
  return out;
}


}  // namespace

StartedCommand StartCommand(const Connection& conn, const v1::ExecRequest& request) {
  StartedCommand s;
  const std::string what = "exec " + (request.argv().empty() ? std::string() : request.argv(0));
  if (request.argv().empty() || request.argv(0).empty()) {
    s.code = kInvalidArgument;
    s.error = "exec: empty argv";
    return s;
  }
  const ExecDefaults defaults = conn.ctx->workload->exec_defaults();
  ChildPlan plan;
  plan.argv.assign(request.argv().begin(), request.argv().end());
  plan.env = MergeEnv(defaults.env, request);
  plan.cwd = !request.cwd().empty() ? request.cwd() : (defaults.cwd.empty() ? "/" : defaults.cwd);
  plan.tty = request.tty();

  const std::string user_spec = !request.user().empty() ? request.user() : defaults.user;
  UserResult user = ResolveUser(user_spec, conn.ctx->root_dir);
  if (!user.ok) {
    s.code = user.error.find("not found") != std::string::npos ? kNotFound : kInvalidArgument;
    s.error = what + ": " + user.error;
    return s;
  }
  if (!user_spec.empty()) {
    plan.user = user.user;  // "" runs as the agent itself (root in the guest).
  }
  if (!HasKey(plan.env, "PATH")) {
    plan.env.push_back(std::string("PATH=") + kDefaultPath);
  }
  if (!HasKey(plan.env, "HOME")) {
    plan.env.push_back("HOME=" + user.user.home);
  }
  if (plan.tty && !HasKey(plan.env, "TERM")) {
    plan.env.push_back("TERM=xterm");
  }
  int look_err = 0;
  plan.path = LookPath(plan.argv[0], GetEnv(plan.env, "PATH"), &look_err);
  if (plan.path.empty()) {
    s.code = ErrnoToCode(look_err);
    s.error = ErrnoMessage(what + ": not found in PATH " + GetEnv(plan.env, "PATH"), look_err);
    return s;
  }

  // Child-side fds, closed in the parent after fork.
  Fd child_in, child_out, child_err;
  if (plan.tty) {
    Fd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (master.get() < 0 || ::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) {
      s.code = ErrnoToCode(errno);
      s.error = ErrnoMessage(what + ": open pty", errno);
      return s;
    }
    char name[128];
    if (::ptsname_r(master.get(), name, sizeof(name)) != 0) {
      s.code = kInternal;
      s.error = ErrnoMessage(what + ": ptsname", errno);
      return s;
    }
    if (request.has_window()) {
      winsize ws{};
      ws.ws_row = static_cast<unsigned short>(request.window().rows());
      ws.ws_col = static_cast<unsigned short>(request.window().cols());
      ::ioctl(master.get(), TIOCSWINSZ, &ws);
    }
    child_out = Fd(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (child_out.get() < 0) {
      s.code = ErrnoToCode(errno);
      s.error = ErrnoMessage(what + ": open " + name, errno);
      return s;
    }
    plan.stdin_fd = plan.stdout_fd = plan.stderr_fd = child_out.get();
    s.stdout_r = std::move(master);
  } else {
    int p[2];
    if (request.stdin()) {
      if (::pipe2(p, O_CLOEXEC) != 0) {
        s.code = ErrnoToCode(errno);
        s.error = ErrnoMessage(what + ": pipe", errno);
        return s;
      }
      child_in = Fd(p[0]);
      s.stdin_w = Fd(p[1]);
    } else {
      child_in = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    }
    if (::pipe2(p, O_CLOEXEC) != 0) {
      s.code = ErrnoToCode(errno);
      s.error = ErrnoMessage(what + ": pipe", errno);
      return s;
    }
    s.stdout_r = Fd(p[0]);
    child_out = Fd(p[1]);
    if (::pipe2(p, O_CLOEXEC) != 0) {
      s.code = ErrnoToCode(errno);
      s.error = ErrnoMessage(what + ": pipe", errno);
      return s;
    }
    s.stderr_r = Fd(p[0]);
    child_err = Fd(p[1]);
    plan.stdin_fd = child_in.get();
    plan.stdout_fd = child_out.get();
    plan.stderr_fd = child_err.get();
  }
  int ep[2];
  if (::pipe2(ep, O_CLOEXEC) != 0) {
    s.code = ErrnoToCode(errno);
    s.error = ErrnoMessage(what + ": pipe", errno);
    return s;
  }
  Fd error_r(ep[0]);
  Fd error_w(ep[1]);
  plan.error_pipe = error_w.get();

  std::vector<char*> argv = CStrings(plan.argv);
  std::vector<char*> envp = CStrings(plan.env);
  pid_t pid = conn.ctx->reaper->Spawn([&]() -> pid_t {
    pid_t p = ::fork();
    if (p == 0) {
      RunChild(plan, argv.data(), envp.data());
    }
    return p < 0 ? -errno : p;
  });
  if (pid < 0) {
    s.code = ErrnoToCode(-pid);
    s.error = ErrnoMessage(what + ": fork", -pid);
    return s;
  }
  error_w.Reset();
  child_in.Reset();
  child_out.Reset();
  child_err.Reset();
  ChildFailure failure;
  ssize_t n;
  do {
    n = ::read(error_r.get(), &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(failure))) {
    conn.ctx->reaper->Wait(pid, -1);  // It _exits at once.
    s.code = ErrnoToCode(failure.err);
    std::string detail = failure.stage == kStageCwd  ? " " + plan.cwd
                         : failure.stage == kStageExec ? " " + plan.path
                         : failure.stage == kStageUser ? " " + user_spec
                                                       : "";
    s.error = ErrnoMessage(what + ": " + StageName(failure.stage) + detail, failure.err);
    return s;
  }
  s.pid = pid;
  return s;
}

}  // namespace supermachine::agent::rpc
