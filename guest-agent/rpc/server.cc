// File: guest-agent/rpc/server.cc
// Accept loop and per-connection dispatch (see server.h). One thread per connection: an
// operation may block for as long as a command runs, and a ping must never queue behind it.
// Stop() wakes the accept loop through an eventfd and shuts every live connection down, which
// every handler notices (blocking reads return, polls see POLLHUP).
#include "guest-agent/rpc/server.h"

#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "guest-agent/protocol/frame.h"
#include "guest-agent/rpc/connection.h"
#include "guest-agent/rpc/restore_hook.h"

namespace supermachine::agent::rpc {

struct Server::State {
  ServerOptions options;
  ServerContext ctx;
  int stop_fd = -1;  // eventfd, readable once Stop() was called.
  std::mutex mu;
  std::condition_variable idle_cv;
  std::set<int> live_fds;  // Connection sockets being served.
  int live_threads = 0;
  bool stopping = false;
};

namespace {

double UptimeSeconds() {
  // "12345.67 54321.00\n": seconds since boot, then idle seconds.
  return std::strtod(ReadSmallFile("/proc/uptime").c_str(), nullptr);
}

void Dispatch(const Connection& conn) {
  v1::Request request;
  protocol::ReadStatus read = protocol::ReadMessage(conn.fd, &request);
  switch (read.result) {
    case protocol::ReadResult::kOk:
      break;
    case protocol::ReadResult::kEof:
    case protocol::ReadResult::kIoError:
      return;  // Peer gone before asking anything.
    case protocol::ReadResult::kMalformed:
      SendError(conn, kInvalidArgument, "malformed request: " + read.message);
      FinishConnection(conn);
      return;
  }
  switch (request.op_case()) {
    case v1::Request::kPing:
      HandlePing(conn);
      break;
    case v1::Request::kExec:
      HandleExec(conn, request.exec());
      break;
    case v1::Request::kWriteFile:
      HandleWriteFile(conn, request.write_file());
      break;
    case v1::Request::kReadFile:
      HandleReadFile(conn, request.read_file());
      break;
    case v1::Request::kStat:
      HandleStat(conn, request.stat());
      break;
    case v1::Request::kConnect:
      HandleConnect(conn, request.connect());
      return;  // Raw byte stream: closed by the handler's own rules.
    case v1::Request::kWaitReady:
      HandleWaitReady(conn, request.wait_ready());
      break;
    case v1::Request::kWaitExit:
      HandleWaitExit(conn);
      break;
    case v1::Request::kRestored:
      HandleRestored(conn, request.restored());
      break;
    case v1::Request::kShutdown: {
      v1::Response response;
      response.mutable_shutdown();
      SendResponse(conn, response);
      FinishConnection(conn);
      conn.ctx->workload->Shutdown();
      return;
    }
    case v1::Request::OP_NOT_SET:
      // Also what a newer host's operation looks like to us: its field is unknown here.
      SendError(conn, kUnimplemented,
                "request names no operation this agent knows (agent version " +
                    conn.ctx->agent_version + ")");
      break;
  }
  FinishConnection(conn);
}

}  // namespace

void HandlePing(const Connection& conn) {
  v1::Response response;
  auto* pong = response.mutable_pong();
  pong->set_agent_version(conn.ctx->agent_version);
  pong->set_uptime_seconds(UptimeSeconds());
  pong->set_generation(conn.ctx->generation.load());
  SendResponse(conn, response);
}

int ListenVsock(uint32_t port) {
  int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -errno;
  }
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 128) != 0) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

Server::Server(ServerOptions o) : state_(new State) {
  state_->options = std::move(o);
  ServerContext& ctx = state_->ctx;
  ctx.workload = state_->options.workload;
  ctx.reaper = state_->options.reaper;
  ctx.system = state_->options.system != nullptr ? state_->options.system : RealSystem();
  ctx.agent_version = state_->options.agent_version;
  ctx.root_dir = state_->options.root_dir;
  state_->stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

Server::~Server() {
  Stop();
  {
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->idle_cv.wait(lock, [this] { return state_->live_threads == 0; });
  }
  if (state_->stop_fd >= 0) {
    ::close(state_->stop_fd);
  }
  delete state_;
}

void Server::Stop() {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->stopping) {
    return;
  }
  state_->stopping = true;
  uint64_t one = 1;
  (void)!::write(state_->stop_fd, &one, sizeof(one));
  for (int fd : state_->live_fds) {
    ::shutdown(fd, SHUT_RDWR);
  }
}

void Server::Run() {
  State* s = state_;
  while (true) {
    pollfd fds[2] = {{s->options.listen_fd, POLLIN, 0}, {s->stop_fd, POLLIN, 0}};
    int rc = ::poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) {
        continue;
      }
      std::fprintf(stderr, "agent rpc: poll on listener: errno %d\n", errno);
      break;
    }
    if (fds[1].revents != 0) {
      break;
    }
    if (fds[0].revents & (POLLERR | POLLNVAL)) {
      std::fprintf(stderr, "agent rpc: listener failed (revents %#x)\n", fds[0].revents);
      break;
    }
    int fd = ::accept4(s->options.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Transient (peer reset before accept, fd limits): keep serving.
      if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
        ::poll(nullptr, 0, 50);
      }
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (s->stopping) {
        ::close(fd);
        break;
      }
      s->live_fds.insert(fd);
      ++s->live_threads;
    }
    std::thread([s, fd] {
      // Writing to a command's stdin after it closed it must be EPIPE, not a SIGPIPE that
      // kills the agent (PID 1 is spared by the kernel; host test binaries are not). Blocked
      // per connection thread, a pending SIGPIPE dies with the thread; children reset masks.
      sigset_t pipe_only;
      sigemptyset(&pipe_only);
      sigaddset(&pipe_only, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
      Dispatch(Connection{fd, &s->ctx});
      std::lock_guard<std::mutex> lock(s->mu);
      s->live_fds.erase(fd);
      ::close(fd);
      if (--s->live_threads == 0) {
        s->idle_cv.notify_all();
      }
    }).detach();
  }
  std::unique_lock<std::mutex> lock(s->mu);
  s->idle_cv.wait(lock, [s] { return s->live_threads == 0; });
}

}  // namespace supermachine::agent::rpc
