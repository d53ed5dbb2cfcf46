// File: fake_agent.cc
// Accept loop and per-connection threads of the fake agent.
#include "tests/unit/agent_client/fake_agent.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "guest-agent/protocol/frame.h"

namespace supermachine::agent::testing {

bool Send(int fd, const google::protobuf::MessageLite& message) {
  return protocol::WriteMessage(fd, message) == 0;
}

bool Recv(int fd, google::protobuf::MessageLite* message) {
  return protocol::ReadMessage(fd, message).result == protocol::ReadResult::kOk;
}

v1::Response ErrorResponse(int code, const std::string& message) {
  v1::Response r;
  r.mutable_error()->set_code(code);
  r.mutable_error()->set_message(message);
  return r;
}

FakeAgent::FakeAgent(std::string socket_path, Handler handler, Options options)
    : path_(std::move(socket_path)),
      handler_(std::move(handler)),
      options_(std::move(options)),
      listener_(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
  unlink(path_.c_str());
  if (bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener_.get(), 128) != 0) {
    perror("fake agent: bind/listen");
    std::abort();
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    std::abort();
  }
  stop_read_ = base::UniqueFd(p[0]);
  stop_write_ = base::UniqueFd(p[1]);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FakeAgent::~FakeAgent() {
  (void)!write(stop_write_.get(), "x", 1);
  acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (auto& t : workers) {
    t.join();
  }
  unlink(path_.c_str());
}

void FakeAgent::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{.fd = listener_.get(), .events = POLLIN, .revents = 0},
                     {.fd = stop_read_.get(), .events = POLLIN, .revents = 0}};
    if (poll(fds, 2, -1) < 0) {
      continue;
    }
    if (fds[1].revents != 0) {
      return;
    }
    base::UniqueFd conn(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) {
      continue;
    }
    ++connections_;
    std::lock_guard<std::mutex> lock(mu_);
    workers_.emplace_back([this, fd = conn.Release()] { Serve(base::UniqueFd(fd)); });
  }
}

void FakeAgent::Serve(base::UniqueFd fd) {
  if (options_.hybrid) {
    std::string line;
    char c = 0;
    while (line.size() < 64 && read(fd.get(), &c, 1) == 1) {
      line.push_back(c);
      if (c == '\n') {
        break;
      }
    }
    absl::string_view rest = absl::StripSuffix(line, "\n");
    int port = -1;
    if (absl::ConsumePrefix(&rest, "CONNECT ") && absl::SimpleAtoi(rest, &port)) {
      last_port_ = port;
    }
    if (options_.handshake_silent) {
      // Hold the connection open until the client gives up (it closes: read returns 0).
      (void)read(fd.get(), &c, 1);
      return;
    }
    if (options_.handshake_reply.empty()) {
      return;  // Refused: close, as the worker does when no guest socket accepts.
    }
    (void)!write(fd.get(), options_.handshake_reply.data(), options_.handshake_reply.size());
  }
  v1::Request request;
  if (!options_.raw && !Recv(fd.get(), &request)) {
    return;
  }
  handler_(fd.get(), request);
}

}  // namespace supermachine::agent::testing
