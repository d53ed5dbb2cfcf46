// File: fake_worker.cc
// A stand-in for supermachine-worker that the daemon can spawn without KVM or a guest: it
// writes its pid to <dir of --control>/fake-worker.pid (so the test knows a restore or bake is
// under way and which process to watch). What it does next is the test's choice, through the
// environment it inherits from the daemon (SM_FAKE_WORKER_AGENT):
//   unset            sleeps until killed, never answering the agent handshake: the daemon is
//                    left waiting mid-Acquire (or in a bake's boot stage), where the test kills it;
//   snapshot-blocks  answers the hybrid-vsock handshake and agent pings (so a bake with
//                    `--readiness after=<ms>` reaches its snapshot stage), and on `snapshot DIR`
//                    writes a partial DIR/memory.tmp.fake, then <dir of --control>/
//                    fake-worker.snapshotting, and never answers: the bake is mid-snapshot;
//   snapshot-ok      the same, but `snapshot DIR` writes DIR/memory then DIR/state (state last,
//                    as the real worker) and answers; `exit` ends it: a bake that succeeds.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "guest-agent/protocol/frame.h"
#include "proto/agent.pb.h"

namespace {

namespace v1 = supermachine::agent::v1;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fake worker: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(2);
}

// Written under a temp name and renamed, so a reader never sees it half-written.
void WriteFileAtomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    Die("create " + tmp);
  }
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    Die("rename " + path);
  }
}

int Listen(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ::unlink(path.c_str());
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 16) != 0) {
    Die("listen on " + path);
  }
  return fd;
}

// One line without its newline ("" at EOF).
std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') {
    line.push_back(c);
  }
  return line;
}

void Send(int fd, const std::string& s) { (void)!::write(fd, s.data(), s.size()); }

// One hybrid-vsock connection: "CONNECT <port>" → "OK 1", then one request. A ping gets a
// pong; anything else (WaitExit while a bake waits out `after=`) an error, as from an agent
// with nothing to report yet.
void ServeAgent(int fd) {
  if (ReadLine(fd).rfind("CONNECT ", 0) != 0) {
    return;
  }
  Send(fd, "OK 1\n");
  v1::Request req;
  if (supermachine::agent::protocol::ReadMessage(fd, &req).result !=
      supermachine::agent::protocol::ReadResult::kOk) {
    return;
  }
  v1::Response resp;
  if (req.has_ping()) {
    resp.mutable_pong()->set_agent_version("fake-worker");
  } else {
    resp.mutable_error()->set_code(4);  // DEADLINE_EXCEEDED: nothing happened yet
    resp.mutable_error()->set_message("fake worker: no workload");
  }
  supermachine::agent::protocol::WriteMessage(fd, resp);
}

// Control-socket commands (docs/snapshot.md) on one connection, until EOF.
void ServeControl(int fd, const std::string& dir, bool block_snapshot) {
  for (std::string line = ReadLine(fd); !line.empty(); line = ReadLine(fd)) {
    if (line.rfind("snapshot ", 0) == 0) {
      const std::string out = line.substr(9);
      if (block_snapshot) {
        WriteFileAtomically(out + "/memory.tmp.fake", std::string(4096, 'm'));
        WriteFileAtomically(dir + "/fake-worker.snapshotting", "");
        for (;;) {
          ::pause();
        }
      }
      WriteFileAtomically(out + "/memory", std::string(4096, 'm'));
      WriteFileAtomically(out + "/state", "fake worker state");
      Send(fd, "OK snapshot " + out + "\n");
    } else if (line == "exit") {
      Send(fd, "OK exiting\n");
      std::exit(0);
    } else {
      Send(fd, "ERR fake worker: unknown command\n");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string control;
  std::string vsock;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--control") == 0) {
      control = argv[i + 1];
    } else if (std::strcmp(argv[i], "--vsock") == 0) {
      vsock = argv[i + 1];
    }
  }
  if (control.empty()) {
    std::fprintf(stderr, "fake worker: no --control\n");
    return 2;
  }
  const std::string dir = control.substr(0, control.rfind('/'));
  const char* mode_env = std::getenv("SM_FAKE_WORKER_AGENT");
  const std::string mode = mode_env == nullptr ? "" : mode_env;
  int listeners[2] = {-1, -1};
  if (!mode.empty()) {
    if (vsock.empty()) {
      std::fprintf(stderr, "fake worker: SM_FAKE_WORKER_AGENT needs --vsock\n");
      return 2;
    }
    // Bound before the pid file appears, so a test that sees the pid can connect.
    listeners[0] = Listen(vsock);
    listeners[1] = Listen(control);
  }
  WriteFileAtomically(dir + "/fake-worker.pid", std::to_string(::getpid()) + "\n");
  if (mode.empty()) {
    for (;;) {
      ::pause();
    }
  }
  for (;;) {
    pollfd p[2] = {{listeners[0], POLLIN, 0}, {listeners[1], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      continue;
    }
    for (int i = 0; i < 2; ++i) {
      if ((p[i].revents & POLLIN) == 0) {
        continue;
      }
      const int c = ::accept4(listeners[i], nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        continue;
      }
      if (i == 0) {
        ServeAgent(c);
      } else {
        ServeControl(c, dir, mode == "snapshot-blocks");
      }
      ::close(c);
    }
  }
}
