// File: guest-agent/rpc/exec_start.h
// Starting an exec'd command (internal to rpc/): resolve argv, env, cwd and user, set up pipes
// or a pty, fork through the Reaper, and report any failure before execve as an Error. The
// stream loop that follows is exec.cc.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "guest-agent/rpc/connection.h"
#include "guest-agent/rpc/fd.h"
#include "proto/agent.pb.h"

namespace supermachine::agent::rpc {

// PATH when neither the request nor the workload sets one.
inline constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct StartedCommand {
  pid_t pid = -1;  // > 0 when started; else code/error say why.
  Fd stdin_w;      // Non-tty: our end of the command's stdin (invalid when stdin = false).
  Fd stdout_r;     // Non-tty: stdout; tty: the pty master (read and write).
  Fd stderr_r;     // Non-tty only.
  int code = kOk;
  std::string error;
};

// Starts the command; the child is registered with conn.ctx->reaper.
StartedCommand StartCommand(const Connection& conn, const v1::ExecRequest& request);

// Request env over the workload's (same key: the request wins), unless replace_env.
std::vector<std::string> MergeEnv(const std::vector<std::string>& defaults,
                                  const v1::ExecRequest& request);

// argv[0] with a '/' is returned as is; else the first executable regular file named `name`
// in the colon-separated `path`. Empty, with *err = ENOENT or EACCES, when there is none.
std::string LookPath(const std::string& name, const std::string& path, int* err);

}  // namespace supermachine::agent::rpc
