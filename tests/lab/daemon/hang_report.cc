// File: hang_report.cc
#include "tests/lab/daemon/hang_report.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "worker/base/child_process.h"

namespace supermachine::lab {
namespace {

std::string ReadProc(pid_t pid, const char* file) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/", file), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The state letter and parent pid from /proc/PID/stat (the command name in parentheses may
// hold blanks, so fields are counted after its closing parenthesis).
bool StateAndParent(pid_t pid, char* state, pid_t* ppid) {
  const std::string stat = ReadProc(pid, "stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) {
    return false;
  }
  std::vector<std::string> f = absl::StrSplit(stat.substr(close + 1), ' ', absl::SkipEmpty());
  int parent = 0;
  if (f.size() < 2 || f[0].empty() || !absl::SimpleAtoi(f[1], &parent)) {
    return false;
  }
  *state = f[0][0];
  *ppid = parent;
  return true;
}

}  // namespace

std::string ProcessTree(pid_t root) {
  std::map<pid_t, std::vector<pid_t>> children;
  std::map<pid_t, char> states;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    int pid = 0;
    char state = '?';
    pid_t ppid = 0;
    if (absl::SimpleAtoi(entry.path().filename().string(), &pid) &&
        StateAndParent(pid, &state, &ppid)) {
      children[ppid].push_back(pid);
      states[pid] = state;
    }
  }
  std::string out;
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    const pid_t pid = todo.back();
    todo.pop_back();
    std::string cmd = absl::StrReplaceAll(ReadProc(pid, "cmdline"), {{std::string(1, '\0'), " "}});
    absl::StrAppend(&out, pid, " ", std::string(1, states.count(pid) ? states[pid] : '?'), " ",
                    ReadProc(pid, "wchan"), " ", cmd.substr(0, 200), "\n");
    for (pid_t c : children[pid]) {
      todo.push_back(c);
    }
  }
  return out;
}

HangWatchdog::HangWatchdog(std::string what, absl::Duration after, pid_t daemon_pid,
                           std::function<std::string()> daemon_log)
    : what_(std::move(what)), daemon_pid_(daemon_pid), daemon_log_(std::move(daemon_log)) {
  thread_ = std::thread([this, after] {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(&disarmed_), after)) {
      Fire();
      std::abort();  // The lab run ends now, with the report above as its output.
    }
  });
}

HangWatchdog::~HangWatchdog() {
  {
    absl::MutexLock lock(&mu_);
    disarmed_ = true;
  }
  thread_.join();
}

void HangWatchdog::Fire() const {
  std::fprintf(stderr, "\nHANG: %s is still running; daemon log:\n%s\n", what_.c_str(),
               daemon_log_().c_str());
  std::fprintf(stderr, "HANG: the daemon's processes (pid state wchan cmdline):\n%s",
               ProcessTree(daemon_pid_).c_str());
  std::fflush(stderr);
  // Backtraces when gdb is there (CI installs it for this); without it the list above is all.
  for (const char* gdb : {"/usr/bin/gdb", "/usr/local/bin/gdb"}) {
    if (::access(gdb, X_OK) != 0) {
      continue;
    }
    std::fprintf(stderr, "HANG: the daemon's threads:\n");
    std::fflush(stderr);
    absl::StatusOr<base::ChildProcess> p = base::ChildProcess::Spawn(
        {.argv = {gdb, "-p", absl::StrCat(daemon_pid_), "-batch", "-nx", "-ex",
                  "thread apply all bt"},
         .stdout_fd = STDERR_FILENO});
    if (p.ok()) {
      (void)p->WaitFor(absl::Minutes(2));
    }
    break;
  }
  std::fflush(stderr);
}

}  // namespace supermachine::lab
