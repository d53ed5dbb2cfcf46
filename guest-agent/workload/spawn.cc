// File: guest-agent/workload/spawn.cc
// fork + execve with a CLOEXEC pipe that carries the child's errno back when setup or exec
// fails (the pipe closes silently on a successful exec).
#include "guest-agent/workload/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace supermachine::agent {
namespace {

// What the child reports before _exit when a step fails.
struct ChildFailure {
  int step;  // Index into kSteps.
  int error;
};
constexpr const char* kSteps[] = {"setsid", "dup2 stdio", "set user", "chdir", "exec"};
enum Step { kSetsid, kDup, kUser, kChdir, kExec };

[[noreturn]] void Fail(int pipe_fd, Step step, int error) {
  ChildFailure f{step, error};
  ssize_t unused = write(pipe_fd, &f, sizeof(f));
  (void)unused;
  _exit(error == ENOENT ? 127 : 126);
}

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const std::string& s : v) {
    out.push_back(const_cast<char*>(s.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::vector<std::string> ExecCandidates(const std::string& argv0, const std::string& path_env) {
  if (argv0.find('/') != std::string::npos) {
    return {argv0};
  }
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t end = path_env.find(':', start);
    std::string dir = path_env.substr(start, end == std::string::npos ? end : end - start);
    out.push_back(dir.empty() ? argv0 : dir.append("/").append(argv0));
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  return out;
}

std::string EnvValue(const std::vector<std::string>& env, const std::string& key,
                     const std::string& fallback) {
  for (const std::string& e : env) {
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') {
      return e.substr(key.size() + 1);
    }
  }
  return fallback;
}

SpawnResult SpawnProcess(Reaper* reaper, const SpawnSpec& spec) {
  SpawnResult result;
  if (spec.argv.empty()) {
    result.error = "empty argv";
    return result;
  }
  const std::vector<std::string> candidates =
      ExecCandidates(spec.argv[0], EnvValue(spec.env, "PATH", ""));
  std::vector<char*> argv = CStrings(spec.argv);
  std::vector<char*> envp = CStrings(spec.env);
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  sigset_t empty;
  sigemptyset(&empty);
  pid_t pid = reaper->Spawn([&]() -> pid_t {
    pid_t child = fork();
    if (child != 0) {
      return child < 0 ? -errno : child;
    }
    // Child: async-signal-safe calls only from here on.
    close(report[0]);
    sigprocmask(SIG_SETMASK, &empty, nullptr);  // PID 1 blocks signals it takes via sigwait.
    if (setsid() < 0) {
      Fail(report[1], kSetsid, errno);
    }
    const int fds[3] = {spec.stdin_fd, spec.stdout_fd, spec.stderr_fd};
    for (int i = 0; i < 3; ++i) {
      if (fds[i] >= 0 && dup2(fds[i], i) < 0) {
        Fail(report[1], kDup, errno);
      }
    }
    if (int rc = ApplyUser(spec.user); rc != 0) {
      Fail(report[1], kUser, -rc);
    }
    if (chdir(spec.cwd.c_str()) != 0) {
      Fail(report[1], kChdir, errno);
    }
    int error = ENOENT;
    for (const std::string& path : candidates) {
      execve(path.c_str(), argv.data(), envp.data());
      // Like execvp: a later PATH entry may still work after ENOENT/ENOTDIR; remember the
      // more telling EACCES if one was seen.
      if (errno != ENOENT && errno != ENOTDIR) {
        error = errno;
        if (errno != EACCES) {
          break;
        }
      }
    }
    Fail(report[1], kExec, error);
  });
  close(report[1]);
  if (pid < 0) {
    close(report[0]);
    result.error = std::string("fork: ") + std::strerror(-pid);
    return result;
  }
  result.pid = pid;
  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(report[0], &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof(failure)) && failure.step >= 0 && failure.step <= kExec) {
    std::string what = kSteps[failure.step];
    if (failure.step == kExec) {
      what += " " + spec.argv[0];
    } else if (failure.step == kChdir) {
      what += " " + spec.cwd;
    }
    result.error = what + ": " + std::strerror(failure.error);
  }
  return result;
}

}  // namespace supermachine::agent
