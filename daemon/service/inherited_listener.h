// File: inherited_listener.h
// Serves gRPC on a listening Unix socket systemd passed us (socket activation). gRPC C++
// cannot adopt a *listening* fd — ServerBuilder only binds addresses itself — but it can
// adopt a *connected* one (grpc::AddInsecureChannelFromFd, grpcpp/server_posix.h). So this
// class runs the accept loop: each accepted connection becomes one insecure gRPC transport on
// the already started server. Insecure is right here exactly as for the socket the daemon
// binds itself: the Unix socket's file mode and group (SocketMode=/SocketGroup= in the
// .socket unit) are its access control. A passed TCP socket is refused (listen_fds.h): gRPC
// can adopt connected fds only without TLS, and the daemon never serves TCP without TLS.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/server.h>

#include "absl/status/statusor.h"
#include "worker/base/unique_fd.h"

namespace supermachine::service {

class InheritedListener {
 public:
  // Takes ownership of `listen_fd` (a listening AF_UNIX stream socket) and starts accepting
  // into `server`, which must be started and must outlive this object. `on_error` is told
  // about accept failures that are not the client's doing (e.g. EMFILE); may be empty.
  static absl::StatusOr<std::unique_ptr<InheritedListener>> Start(
      base::UniqueFd listen_fd, grpc::Server* server,
      std::function<void(const std::string&)> on_error);

  // Stops accepting and joins the thread; established connections stay with the server.
  ~InheritedListener();
  InheritedListener(const InheritedListener&) = delete;
  InheritedListener& operator=(const InheritedListener&) = delete;

  // Connections handed to gRPC so far (for tests and logs).
  uint64_t accepted() const { return accepted_.load(); }

 private:
  InheritedListener(base::UniqueFd listen_fd, base::UniqueFd stop_fd, grpc::Server* server,
                    std::function<void(const std::string&)> on_error)
      : listen_fd_(std::move(listen_fd)), stop_fd_(std::move(stop_fd)), server_(server),
        on_error_(std::move(on_error)) {}
  void Loop();

  base::UniqueFd listen_fd_;
  base::UniqueFd stop_fd_;  // eventfd: written by the destructor to end Loop's poll
  grpc::Server* server_;
  std::function<void(const std::string&)> on_error_;
  std::atomic<uint64_t> accepted_{0};
  std::thread thread_;
};

}  // namespace supermachine::service
