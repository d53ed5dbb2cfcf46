// File: guest-agent/workload/spawn.h
// Starting one process as a container process: credentials, cwd, new session, stdio, clean
// signal mask, PATH lookup in the *process's* environment, and the reason when exec fails.
// Everything the child needs is prepared before fork(); the child only makes
// async-signal-safe calls, as the agent is multi-threaded.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "guest-agent/process/reaper.h"
#include "guest-agent/process/users.h"

namespace supermachine::agent {

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in env's PATH when it has no '/'.
  std::vector<std::string> env;   // "KEY=VALUE".
  std::string cwd = "/";
  ResolvedUser user;
  int stdin_fd = -1;   // Duplicated onto 0/1/2 in the child; -1 leaves the agent's fd.
  int stdout_fd = -1;
  int stderr_fd = -1;
};

struct SpawnResult {
  pid_t pid = -1;     // > 0 when the child exists (even if its exec then failed).
  std::string error;  // Why it could not start ("exec /bin/nope: No such file or directory").
};

// Paths execve() is tried on, in order: argv0 itself when it contains '/', else each entry of
// `path_env` (the value of PATH; empty entries mean the cwd) joined with argv0. Pure.
std::vector<std::string> ExecCandidates(const std::string& argv0, const std::string& path_env);

// The value of `key` in a KEY=VALUE list, or `fallback`.
std::string EnvValue(const std::vector<std::string>& env, const std::string& key,
                     const std::string& fallback);

// Forks through `reaper` (so the pid is registered before it can be reaped) and execs. When
// exec fails the child exits 127 (not found) or 126 (other), as shells and tini do, and
// `error` says why; the exit must still be collected from the reaper.
SpawnResult SpawnProcess(Reaper* reaper, const SpawnSpec& spec);

}  // namespace supermachine::agent
