// File: child.h
// Runs a lambda in a forked child and returns how the child ended: the filters and the jail
// are irreversible, so every test that installs one does it in a child, never in the test
// process. The lambda returns the child's exit code (0 = all checks passed; other values name
// the failed check).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <functional>

namespace supermachine::jail::testing {

struct ChildEnd {
  bool signaled = false;
  int code = -1;    // exit code when !signaled
  int signal = 0;   // signal when signaled
};

inline ChildEnd RunInChild(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    _exit(body());
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  ChildEnd end;
  if (WIFSIGNALED(status)) {
    end.signaled = true;
    end.signal = WTERMSIG(status);
  } else {
    end.code = WEXITSTATUS(status);
  }
  return end;
}

}  // namespace supermachine::jail::testing
