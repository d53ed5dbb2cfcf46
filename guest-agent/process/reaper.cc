// File: guest-agent/process/reaper.cc
// The single wait4(-1) loop of PID 1 (see reaper.h). The thread blocks in wait4 while there are
// children; with none (ECHILD) it sleeps on the condition variable until Spawn() adds one (or a
// short poll interval passes, for children forked outside Spawn). The destructor wakes a
// blocked wait4 by forking a child that exits at once: no signal handler, no process-wide
// state, and the wake-up child is reaped like any orphan.
#include "guest-agent/process/reaper.h"

#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

namespace supermachine::agent {
namespace {

// How long the loop sleeps with no children before looking again. Children forked by Spawn
// wake it at once; only children forked behind the reaper's back wait this long to be reaped.
constexpr auto kIdlePoll = std::chrono::milliseconds(200);

}  // namespace

Reaper::Reaper() : thread_([this] { Loop(); }) {}

Reaper::~Reaper() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  // The thread may be blocked in wait4(-1) on long-lived children: give it one that exits now.
  pid_t waker = ::fork();
  if (waker == 0) {
    ::_exit(0);
  }
  thread_.join();
  if (waker > 0) {
    // Reaped by the loop already (ECHILD), or still to reap because the loop left first.
    while (::waitpid(waker, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

pid_t Reaper::Spawn(const std::function<pid_t()>& spawn) {
  pid_t pid;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pid = spawn();
    if (pid > 0) {
      registered_[pid] = std::nullopt;
    }
  }
  if (pid > 0) {
    cv_.notify_all();  // Wakes the loop if it was idle with no children.
  }
  return pid;
}

std::optional<ReapedStatus> Reaper::Wait(pid_t pid, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto done = [&] {
    auto it = registered_.find(pid);
    return it == registered_.end() || it->second.has_value();
  };
  if (timeout_ms < 0) {
    cv_.wait(lock, done);
  } else if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), done)) {
    return std::nullopt;
  }
  auto it = registered_.find(pid);
  if (it == registered_.end()) {
    return std::nullopt;  // Never registered (or already collected): nothing to wait for.
  }
  ReapedStatus status = *it->second;
  registered_.erase(it);
  return status;
}

void Reaper::Loop() {
  while (true) {
    int wait_status = 0;
    struct rusage usage {};
    pid_t pid = ::wait4(-1, &wait_status, 0, &usage);
    const int wait_errno = errno;
    std::unique_lock<std::mutex> lock(mu_);
    if (pid > 0) {
      auto it = registered_.find(pid);
      if (it != registered_.end()) {
        it->second = ReapedStatus{wait_status, usage};
        cv_.notify_all();
      }
      // Else an orphan (or the destructor's waker): reaped, nothing to report.
    }
    if (stopping_) {
      return;
    }
    if (pid < 0 && wait_errno == ECHILD) {
      cv_.wait_for(lock, kIdlePoll);
    }
    // EINTR: go round again.
  }
}

}  // namespace supermachine::agent
