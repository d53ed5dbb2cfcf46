// File: fake_agent.h
// A scripted guest agent on a Unix socket for the client's unit tests: each accepted
// connection runs the test's handler on its own thread with the first Request already read.
// In hybrid mode it first plays the worker's side of the "CONNECT <port>\n" handshake, with a
// reply the test chooses (OK, silence, close, garbage).
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "google/protobuf/message_lite.h"
#include "proto/agent.pb.h"
#include "worker/base/unique_fd.h"

namespace supermachine::agent::testing {

// Blocking frame helpers for handlers (they abort the handler's expectations on failure).
bool Send(int fd, const google::protobuf::MessageLite& message);
bool Recv(int fd, google::protobuf::MessageLite* message);
v1::Response ErrorResponse(int code, const std::string& message);

class FakeAgent {
 public:
  using Handler = std::function<void(int fd, const v1::Request& request)>;

  struct Options {
    // Hybrid vsock mode: read "CONNECT <port>\n" first and answer `handshake_reply` (sent
    // verbatim, may carry extra bytes after the line); "" = close without answering;
    // `handshake_silent` = answer nothing and keep the connection open.
    bool hybrid = false;
    std::string handshake_reply = "OK 1073741824\n";
    bool handshake_silent = false;
    // Raw mode: the handler gets a default Request and reads the stream itself (for
    // handshake tests that look at the bytes after the reply).
    bool raw = false;
  };

  // Listens on `socket_path` at once.
  FakeAgent(std::string socket_path, Handler handler, Options options);
  FakeAgent(std::string socket_path, Handler handler) : FakeAgent(std::move(socket_path), std::move(handler), Options{}) {}
  ~FakeAgent();
  FakeAgent(const FakeAgent&) = delete;
  FakeAgent& operator=(const FakeAgent&) = delete;

  int connections() const { return connections_.load(); }
  // The port of the last CONNECT line seen in hybrid mode (-1 before any).
  int last_connect_port() const { return last_port_.load(); }

 private:
  void AcceptLoop();
  void Serve(base::UniqueFd fd);

  std::string path_;
  Handler handler_;
  Options options_;
  base::UniqueFd listener_;
  base::UniqueFd stop_read_;
  base::UniqueFd stop_write_;
  std::atomic<int> connections_{0};
  std::atomic<int> last_port_{-1};
  std::mutex mu_;
  std::vector<std::thread> workers_;  // Guarded by mu_.
  std::thread acceptor_;
};

}  // namespace supermachine::agent::testing
