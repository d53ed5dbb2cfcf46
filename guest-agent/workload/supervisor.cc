// File: guest-agent/workload/supervisor.cc
// Start, watch, forward, stop.
#include "guest-agent/workload/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "guest-agent/init/power.h"
#include "guest-agent/process/users.h"
#include "guest-agent/workload/spawn.h"

namespace supermachine::agent {
namespace {

constexpr char kPrefix[] = "supermachine-guest-agent: ";
// Docker's default when the image sets none; the exec defaults promise a PATH.
constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

ProcessExit FromWaitStatus(const ReapedStatus& s, std::chrono::steady_clock::duration took) {
  ProcessExit e;
  if (WIFSIGNALED(s.wait_status)) {
    e.signaled = true;
    e.signal = WTERMSIG(s.wait_status);
  } else {
    e.exit_code = WEXITSTATUS(s.wait_status);
  }
  e.duration_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(took).count());
  e.peak_rss_kib = static_cast<uint64_t>(s.usage.ru_maxrss);  // KiB on Linux.
  return e;
}

}  // namespace

Supervisor::Supervisor(Reaper* reaper, LaunchConfig config, SupervisorOptions options)
    : reaper_(reaper), config_(std::move(config)), options_(std::move(options)),
      env_(config_.env) {
  if (EnvValue(env_, "PATH", "").empty()) {
    env_.push_back(std::string("PATH=") + kDefaultPath);
  }
}

Supervisor::~Supervisor() {
  if (watcher_.joinable()) {
    watcher_.join();
  }
  if (stopper_.joinable()) {
    stopper_.join();
  }
}

std::string Supervisor::Start() {
  if (config_.start_on_restore) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      parked_ = true;
    }
    std::printf("%sworkload parked (starts when the host reports a restore)\n", kPrefix);
    std::fflush(stdout);
    return "";
  }
  return Launch();
}

bool Supervisor::parked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return parked_;
}

std::string Supervisor::StartParked() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!parked_ || shutting_down_) {
      return "";
    }
    parked_ = false;  // Taken: a concurrent second call starts nothing.
  }
  if (options_.before_parked_start) {
    if (std::string err = options_.before_parked_start(); !err.empty()) {
      started_ = std::chrono::steady_clock::now();
      std::fprintf(stderr, "%sworkload: %s\n", kPrefix, err.c_str());
      RecordExit(ProcessExit{.exit_code = 126});
      return err;
    }
  }
  return Launch();
}

std::string Supervisor::Launch() {
  started_ = std::chrono::steady_clock::now();
  UserResult user = ResolveUser(config_.user, options_.passwd_root);
  std::string error;
  SpawnResult spawned;
  if (!user.ok) {
    error = "workload user \"" + config_.user + "\": " + user.error;
  } else {
    SpawnSpec spec{.argv = config_.argv, .env = env_, .cwd = config_.cwd, .user = user.user};
    if (EnvValue(spec.env, "HOME", "").empty()) {
      spec.env.push_back("HOME=" + user.user.home);
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int console = open(options_.console.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC);
    spec.stdin_fd = devnull;
    spec.stdout_fd = console;
    spec.stderr_fd = console;
    spawned = SpawnProcess(reaper_, spec);
    if (devnull >= 0) {
      close(devnull);
    }
    if (console >= 0) {
      close(console);
    }
    error = spawned.error;
  }
  if (spawned.pid > 0) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pid_ = spawned.pid;
    }
    watcher_ = std::thread([this, pid = spawned.pid] { Watch(pid); });
  } else {
    // Nothing runs: the workload "exited" as a shell would report a command it cannot run.
    RecordExit(ProcessExit{.exit_code = user.ok ? 127 : 126});
  }
  if (!error.empty()) {
    std::fprintf(stderr, "%sworkload: %s\n", kPrefix, error.c_str());
  }
  return error;
}

void Supervisor::Watch(pid_t pid) {
  std::optional<ReapedStatus> status = reaper_->Wait(pid, -1);
  ProcessExit exit = status ? FromWaitStatus(*status, std::chrono::steady_clock::now() - started_)
                            : ProcessExit{.exit_code = 255};
  RecordExit(exit);
}

void Supervisor::RecordExit(const ProcessExit& exit) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pid_ = -1;
    exit_ = WorkloadExitInfo{.status = exit};
  }
  cv_.notify_all();
  if (exit.signaled) {
    std::printf("%sworkload exited signal=%d duration_ms=%llu\n", kPrefix, exit.signal,
                static_cast<unsigned long long>(exit.duration_us / 1000));
  } else {
    std::printf("%sworkload exited code=%d duration_ms=%llu\n", kPrefix, exit.exit_code,
                static_cast<unsigned long long>(exit.duration_us / 1000));
  }
  std::fflush(stdout);
  if (config_.poweroff_on_exit) {
    Shutdown();
  }
}

void Supervisor::Forward(int sig) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pid_ > 0) {
    kill(pid_, sig);
  }
}

std::optional<WorkloadExitInfo> Supervisor::WaitExit(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto exited = [this] { return exit_.has_value(); };
  if (timeout_ms < 0) {
    cv_.wait(lock, exited);
  } else if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), exited)) {
    return std::nullopt;
  }
  return exit_;
}

ExecDefaults Supervisor::exec_defaults() const {
  return ExecDefaults{.env = env_, .cwd = config_.cwd, .user = config_.user};
}

void Supervisor::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutting_down_) {
    return;
  }
  shutting_down_ = true;
  // On its own thread: the caller (an RPC handler, or the watcher) returns at once.
  stopper_ = std::thread([this] { StopAndPowerOff(); });
}

void Supervisor::StopAndPowerOff() {
  Forward(SIGTERM);
  // A parked workload never started: nothing to wait for (StartParked refuses from now on).
  if (!parked() && !WaitExit(static_cast<int>(options_.stop_grace.count()))) {
    std::printf("%sworkload ignored SIGTERM for %lld ms: killing it\n", kPrefix,
                static_cast<long long>(options_.stop_grace.count()));
    std::fflush(stdout);
    Forward(SIGKILL);
    WaitExit(1000);
  }
  std::printf("%spowering off\n", kPrefix);
  std::fflush(stdout);
  if (options_.power_off) {
    options_.power_off();
    return;
  }
  // Whatever else runs (exec'd commands, daemons the workload left behind) goes too; from PID
  // 1, kill(-1) reaches every process but PID 1 itself.
  kill(-1, SIGKILL);
  EndVm();
}

}  // namespace supermachine::agent
