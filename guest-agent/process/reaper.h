// File: guest-agent/process/reaper.h
// As PID 1 the agent inherits every orphan, so one thread must wait4(-1) for all children; a
// second waitpid() anywhere else would race it and lose statuses. The Reaper is that single
// waiter: whoever starts a child (the workload supervisor, exec) spawns it through
// Reaper::Spawn, which registers the pid before the child can be reaped, and later collects the
// exit status (with rusage for peak RSS) from the Reaper. Unregistered pids (orphans) are
// reaped and dropped.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace supermachine::agent {

struct ReapedStatus {
  int wait_status = 0;   // As from wait4 (WIFEXITED etc.).
  struct rusage usage {};
};

class Reaper {
 public:
  Reaper();
  ~Reaper();  // Stops the reaping thread.
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // Runs `spawn` (which forks/spawns and returns the child pid, or -errno) with the reaper
  // lock held, and registers the pid, so the reaper thread cannot consume its status first.
  pid_t Spawn(const std::function<pid_t()>& spawn);
  // Waits for a registered child. timeout_ms < 0: forever. nullopt on timeout (the pid stays
  // registered; call again).
  std::optional<ReapedStatus> Wait(pid_t pid, int timeout_ms);

 private:
  void Loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<pid_t, std::optional<ReapedStatus>> registered_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace supermachine::agent
