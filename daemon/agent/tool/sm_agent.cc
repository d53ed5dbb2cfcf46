// File: sm_agent.cc
// sm-agent: drives a guest agent by hand over the worker's hybrid vsock socket (or a plain
// Unix socket) with the same client library the daemon uses. docs/agent-client.md.
//
// Exit status: exec exits with the guest command's status (128 + N when killed by signal N);
// every other verb exits 0 on success; 125 when the agent or the connection fails (as
// `docker run` does for its own errors), 2 for usage errors.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/agent/agent_client.h"
#include "daemon/agent/tool/terminal.h"
#include "guest-agent/protocol/frame.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::agent::tool {
namespace {

constexpr int kExitAgentError = 125;

struct GlobalFlags {
  std::string socket;
  bool unix_socket = false;  // Plain Unix socket (no CONNECT handshake).
  uint32_t port = protocol::kAgentPort;
  double timeout_s = 30;
  double wait_agent_s = 0;
};

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "sm-agent: %s\n", status.ToString().c_str());
  return kExitAgentError;
}

absl::Time Deadline(const GlobalFlags& g) {
  return g.timeout_s <= 0 ? absl::InfiniteFuture() : absl::Now() + absl::Seconds(g.timeout_s);
}

// Writes all of `data` to a blocking fd; false when the reader went away.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int Ping(const AgentClient& client, const GlobalFlags& g) {
  auto pong = client.Ping(Deadline(g));
  if (!pong.ok()) {
    return Fail(pong.status());
  }
  std::printf("agent %s, uptime %.3f s, generation %llu\n", pong->agent_version.c_str(),
              pong->uptime_seconds, static_cast<unsigned long long>(pong->generation));
  return 0;
}

struct ExecFlags {
  bool tty = false;
  bool interactive = false;
  std::vector<std::string> env;
  std::string cwd;
  std::string user;
  double timeout_s = 0;
  std::vector<std::string> argv;
};

int Exec(const AgentClient& client, const GlobalFlags& g, const ExecFlags& f) {
  ExecOptions options{.argv = f.argv,
                      .env = f.env,
                      .cwd = f.cwd,
                      .user = f.user,
                      .tty = f.tty,
                      .timeout = absl::Seconds(f.timeout_s),
                      .attach_stdin = f.interactive};
  if (f.tty) {
    options.window = TerminalSize(STDOUT_FILENO).value_or(WindowSize{});
  }
  // SIGWINCH is taken synchronously by the resize thread; blocked before any thread starts
  // so every thread inherits the mask.
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  if (f.tty) {
    pthread_sigmask(SIG_BLOCK, &winch, nullptr);
  }
  auto session = client.StartExec(options, Deadline(g));
  if (!session.ok()) {
    return Fail(session.status());
  }
  ExecSession* s = session->get();
  std::optional<RawTerminal> raw;
  if (f.tty && f.interactive) {
    raw.emplace(STDIN_FILENO);
  }
  // The helper threads block in read(stdin) / sigwait; they are detached and end with the
  // process (_exit below), since nothing can interrupt a read on a terminal portably.
  if (f.interactive) {
    std::thread([s] {
      std::string buf(size_t{64} << 10, '\0');
      while (true) {
        ssize_t n = read(STDIN_FILENO, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) {
          continue;
        }
        if (n <= 0) {
          (void)s->CloseStdin(absl::InfiniteFuture());
          return;
        }
        if (!s->WriteStdin(std::string_view(buf.data(), static_cast<size_t>(n)),
                           absl::InfiniteFuture())
                 .ok()) {
          return;
        }
      }
    }).detach();
  }
  if (f.tty) {
    std::thread([s, winch] {
      int sig = 0;
      while (sigwait(&winch, &sig) == 0) {
        if (auto size = TerminalSize(STDOUT_FILENO)) {
          (void)s->Resize(*size, absl::Now() + absl::Seconds(5));
        }
      }
    }).detach();
  }
  int code = 0;
  absl::Status failure;
  while (true) {
    auto ev = s->Read(absl::InfiniteFuture());
    if (!ev.ok()) {
      failure = ev.status();
      break;
    }
    if (ev->kind == ExecEvent::Kind::kExit) {
      code = ev->exit.ShellCode();
      if (ev->exit.timed_out) {
        failure = absl::DeadlineExceededError(
            absl::StrCat("command ", ev->exit.ToString(), " after ", f.timeout_s, " s"));
      }
      break;
    }
    WriteAll(ev->kind == ExecEvent::Kind::kStderr ? STDERR_FILENO : STDOUT_FILENO, ev->data);
  }
  if (raw) {
    raw->Restore();
  }
  if (!failure.ok()) {
    std::fprintf(stderr, "sm-agent: %s\n", failure.ToString().c_str());
    if (code == 0) {
      code = kExitAgentError;
    }
  }
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(code);
}

int CopyIn(const AgentClient& client, const GlobalFlags& g, const std::string& host,
           const std::string& guest, int mode, bool parents) {
  base::UniqueFd fd(open(host.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st = {};
  if (!fd.valid() || fstat(fd.get(), &st) != 0) {
    return Fail(base::ErrnoToStatus(errno, "open " + host));
  }
  WriteFileOptions options{.mode = mode >= 0 ? static_cast<uint32_t>(mode) : (st.st_mode & 07777),
                           .make_parents = parents};
  auto size = client.WriteFileFrom(
      guest, options,
      [&](char* buf, size_t n) -> absl::StatusOr<size_t> {
        while (true) {
          ssize_t got = read(fd.get(), buf, n);
          if (got >= 0) {
            return static_cast<size_t>(got);
          }
          if (errno != EINTR) {
            return base::ErrnoToStatus(errno, "read " + host);
          }
        }
      },
      Deadline(g));
  if (!size.ok()) {
    return Fail(size.status());
  }
  std::printf("%llu bytes -> %s\n", static_cast<unsigned long long>(*size), guest.c_str());
  return 0;
}

int CopyOut(const AgentClient& client, const GlobalFlags& g, const std::string& guest,
            const std::string& host, uint64_t max_bytes) {
  // Written to a temp name and renamed, so a failed copy never leaves half a file at `host`.
  std::string tmp = host + ".sm-agent-tmp";
  base::UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    return Fail(base::ErrnoToStatus(errno, "create " + tmp));
  }
  auto info = client.ReadFileTo(
      guest, max_bytes,
      [&](std::string_view chunk) {
        return WriteAll(fd.get(), chunk) ? absl::OkStatus()
                                         : base::ErrnoToStatus(errno, "write " + tmp);
      },
      Deadline(g));
  if (!info.ok()) {
    unlink(tmp.c_str());
    return Fail(info.status());
  }
  if (fchmod(fd.get(), info->mode & 07777) != 0 || rename(tmp.c_str(), host.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return Fail(base::ErrnoToStatus(err, "install " + host));
  }
  return 0;
}

int Stat(const AgentClient& client, const GlobalFlags& g, const std::string& path) {
  auto info = client.Stat(path, Deadline(g));
  if (!info.ok()) {
    return Fail(info.status());
  }
  if (!info->exists) {
    std::printf("%s: does not exist\n", path.c_str());
    return 1;
  }
  std::printf("%s: size %llu, mode %06o, uid %u, gid %u, mtime %s\n", path.c_str(),
              static_cast<unsigned long long>(info->size), info->mode, info->uid, info->gid,
              absl::FormatTime(absl::FromUnixNanos(info->mtime_ns)).c_str());
  return 0;
}

struct ReadyFlags {
  int port = -1;
  bool workload_exit = false;
  double idle_s = 0;
};

int WaitReady(const AgentClient& client, const GlobalFlags& g, const ReadyFlags& f) {
  ReadyCondition c = f.port >= 0       ? ReadyCondition::ListenerPort(static_cast<uint32_t>(f.port))
                     : f.workload_exit ? ReadyCondition::WorkloadExited()
                                       : ReadyCondition::Idle(absl::Seconds(f.idle_s));
  auto waited = client.WaitReady(c, Deadline(g));
  if (!waited.ok()) {
    return Fail(waited.status());
  }
  std::printf("ready after %s\n", absl::FormatDuration(*waited).c_str());
  return 0;
}

int WaitExit(const AgentClient& client, const GlobalFlags& g) {
  auto exit = client.WaitExit(Deadline(g));
  if (!exit.ok()) {
    return Fail(exit.status());
  }
  std::printf("workload %s, %u restarts\n", exit->status.ToString().c_str(), exit->restarts);
  return exit->status.ShellCode();
}

// Bridges stdin/stdout to a guest TCP port: stdin → guest on a thread, guest → stdout here.
int Connect(const AgentClient& client, const GlobalFlags& g, uint32_t port,
            const std::string& address) {
  auto fd = client.Connect(port, Deadline(g), address);
  if (!fd.ok()) {
    return Fail(fd.status());
  }
  int sock = fd->get();
  std::thread([sock] {
    std::string buf(size_t{64} << 10, '\0');
    while (true) {
      ssize_t n = read(STDIN_FILENO, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0 || !WriteAll(sock, std::string_view(buf.data(), static_cast<size_t>(n)))) {
        break;
      }
    }
    shutdown(sock, SHUT_WR);  // The guest server sees EOF, as with `nc -N`.
  }).detach();
  std::string buf(size_t{64} << 10, '\0');
  while (true) {
    ssize_t n = read(sock, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0 || !WriteAll(STDOUT_FILENO, std::string_view(buf.data(), static_cast<size_t>(n)))) {
      break;
    }
  }
  _exit(0);  // The stdin thread may still be blocked in read().
}

}  // namespace

int Main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  CLI::App app{
      "sm-agent: talk to a supermachine guest agent by hand.\n"
      "Connects through the worker's hybrid vsock socket (supermachine-worker --vsock PATH).\n"
      "exec exits with the command's status (128+N for signal N); 125 means the agent or the\n"
      "connection failed."};
  app.require_subcommand(1);
  GlobalFlags g;
  app.add_option("-s,--socket", g.socket, "the worker's vsock socket (--vsock PATH)")->required();
  app.add_flag("--unix", g.unix_socket,
               "the socket is the agent itself (no CONNECT handshake; tests)");
  app.add_option("--port", g.port, "guest vsock port of the agent")->capture_default_str();
  app.add_option("--timeout", g.timeout_s,
                 "seconds each call may take (0: none; exec: only its start)")
      ->capture_default_str();
  app.add_option("--wait-agent", g.wait_agent_s,
                 "first retry pings for up to this many seconds (after boot/restore)");

  auto* ping = app.add_subcommand("ping", "print the agent's version, uptime and generation");

  ExecFlags ef;
  auto* exec = app.add_subcommand("exec", "run a command in the guest: exec [-t] [-i] -- CMD...");
  exec->add_flag("-t,--tty", ef.tty, "run on a pseudo-terminal (local terminal in raw mode)");
  exec->add_flag("-i,--interactive", ef.interactive, "forward our stdin to the command");
  exec->add_option("-e,--env", ef.env, "KEY=VALUE added to the environment (repeatable)")
      ->allow_extra_args(false);
  exec->add_option("-w,--workdir", ef.cwd, "working directory in the guest");
  exec->add_option("-u,--user", ef.user, "user[:group] in the guest");
  exec->add_option("--exec-timeout", ef.timeout_s,
                   "seconds until the guest kills the command (0: none)");
  exec->add_option("command", ef.argv, "the command and its arguments (after --)")->required();

  std::string host_path;
  std::string guest_path;
  int mode = -1;
  bool parents = false;
  auto* cp_in = app.add_subcommand("cp-in", "copy a host file into the guest: cp-in HOST GUEST");
  cp_in->add_option("host", host_path, "host file")->required();
  cp_in->add_option("guest", guest_path, "absolute guest path")->required();
  cp_in->add_option("--mode", mode, "permission bits (default: the host file's)");
  cp_in->add_flag("-p,--parents", parents, "create missing parent directories");

  uint64_t max_bytes = 0;
  auto* cp_out = app.add_subcommand("cp-out", "copy a guest file out: cp-out GUEST HOST");
  cp_out->add_option("guest", guest_path, "absolute guest path")->required();
  cp_out->add_option("host", host_path, "host file to write")->required();
  cp_out->add_option("--max-bytes", max_bytes, "refuse larger files (0: no limit)");

  auto* stat = app.add_subcommand("stat", "stat a guest path");
  stat->add_option("path", guest_path, "guest path")->required();

  ReadyFlags rf;
  auto* ready = app.add_subcommand(
      "wait-ready", "wait until a guest TCP port listens (--port), the workload exits, or idle");
  auto* ready_port = ready->add_option("--port", rf.port, "TCP port that must be in LISTEN");
  auto* ready_exit = ready->add_flag("--workload-exit", rf.workload_exit, "the workload exited");
  auto* ready_idle = ready->add_option("--idle", rf.idle_s, "seconds of guest CPU idleness");
  ready_port->excludes(ready_exit)->excludes(ready_idle);
  ready_exit->excludes(ready_idle);
  ready->require_option(1);

  auto* wait_exit = app.add_subcommand(
      "wait-exit", "wait for the workload to exit; exits with its status");

  uint32_t connect_port = 0;
  std::string address;
  auto* connect = app.add_subcommand(
      "connect", "bridge stdin/stdout to a TCP port in the guest: connect PORT");
  connect->add_option("port", connect_port, "guest TCP port")->required();
  connect->add_option("--address", address, "guest address (default 127.0.0.1)");

  auto* shutdown_cmd = app.add_subcommand("shutdown", "stop the workload and power off");

  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<Dialer> dialer;
  if (g.unix_socket) {
    dialer = std::make_unique<UnixDialer>(g.socket);
  } else {
    dialer = std::make_unique<HybridVsockDialer>(g.socket, g.port);
  }
  AgentClient client(std::move(dialer));
  if (g.wait_agent_s > 0) {
    auto pong = client.WaitForAgent(absl::Now() + absl::Seconds(g.wait_agent_s));
    if (!pong.ok()) {
      return Fail(pong.status());
    }
  }
  if (*ping) {
    return Ping(client, g);
  }
  if (*exec) {
    return Exec(client, g, ef);
  }
  if (*cp_in) {
    return CopyIn(client, g, host_path, guest_path, mode, parents);
  }
  if (*cp_out) {
    return CopyOut(client, g, guest_path, host_path, max_bytes);
  }
  if (*stat) {
    return Stat(client, g, guest_path);
  }
  if (*ready) {
    return WaitReady(client, g, rf);
  }
  if (*wait_exit) {
    return WaitExit(client, g);
  }
  if (*connect) {
    return Connect(client, g, connect_port, address);
  }
  if (*shutdown_cmd) {
    auto st = client.Shutdown(Deadline(g));
    return st.ok() ? 0 : Fail(st);
  }
  return 2;
}

}  // namespace supermachine::agent::tool

int main(int argc, char** argv) { return supermachine::agent::tool::Main(argc, argv); }
