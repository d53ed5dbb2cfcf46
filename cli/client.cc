// File: client.cc
#include "cli/client.h"

#include <grp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "cli/exit_codes.h"
#include "daemon/config/default_paths.h"

namespace supermachine::cli {
namespace {

std::string GroupName(gid_t gid) {
  struct group gr;
  struct group* result = nullptr;
  char buf[4096];
  if (::getgrgid_r(gid, &gr, buf, sizeof(buf), &result) == 0 && result != nullptr) {
    return gr.gr_name;
  }
  return std::to_string(gid);
}

std::string Octal(uint32_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", mode);
  return text;
}

constexpr char kStartHint[] =
    "start it with `systemctl start supermachined` or `supermachined &`, or point smctl at "
    "its socket with --socket or SUPERMACHINE_SOCKET";

}  // namespace

std::string ResolveSocketPath(const std::string& flag_value) {
  if (!flag_value.empty()) {
    return flag_value;
  }
  const char* env = ::getenv("SUPERMACHINE_SOCKET");
  if (env != nullptr && env[0] != '\0') {
    return env;
  }
  return config::DefaultSocketPath(config::CurrentUserEnvironment());
}

SocketDiagnosis DiagnoseSocket(const std::string& path) {
  SocketDiagnosis d;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      d.state = SocketState::kMissing;
    } else if (err == EACCES) {
      // A directory on the way is closed to us; the socket's own group is unknowable.
      d.state = SocketState::kPermissionDenied;
    } else {
      d.state = SocketState::kOther;
      d.error = err;
    }
    return d;
  }
  d.group = GroupName(st.st_gid);
  d.mode = st.st_mode & 07777;
  if (!S_ISSOCK(st.st_mode)) {
    d.state = SocketState::kNotSocket;
    return d;
  }
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    d.state = SocketState::kOther;
    d.error = ENAMETOOLONG;
    return d;
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    d.state = SocketState::kOther;
    d.error = errno;
    return d;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  // The kernel's answer to connect() is the authority on access: it applies uid, groups,
  // capabilities and LSMs, which an access() guess would not.
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  ::close(fd);
  if (rc == 0) {
    d.state = SocketState::kOk;
  } else if (err == ECONNREFUSED) {
    d.state = SocketState::kRefused;
  } else if (err == EACCES || err == EPERM) {
    d.state = SocketState::kPermissionDenied;
  } else {
    d.state = SocketState::kOther;
    d.error = err;
  }
  return d;
}

grpc::Status ExplainSocketProblem(const SocketDiagnosis& d, const std::string& path) {
  switch (d.state) {
    case SocketState::kOk:
      return grpc::Status::OK;
    case SocketState::kMissing:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "supermachined is not running (no socket at " + path + "): " + kStartHint);
    case SocketState::kRefused:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "supermachined is not running (" + path +
                              " exists but nothing accepts connections on it): " + kStartHint);
    case SocketState::kNotSocket:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          path + " is not a socket: pass supermachined's socket with --socket "
                                 "or SUPERMACHINE_SOCKET");
    case SocketState::kPermissionDenied:
      if (d.group.empty()) {
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                            "permission denied reaching " + path +
                                ": a directory on the path is closed to you; ask the admin for "
                                "access to supermachined's socket or run as root");
      }
      return grpc::Status(
          grpc::StatusCode::PERMISSION_DENIED,
          "permission denied on " + path + " (group " + d.group + ", mode " + Octal(d.mode) +
              "): add yourself to group " + d.group + " (sudo usermod -aG " + d.group +
              " $USER, then log in again; ls -l " + path + " shows it) or run as root");
    case SocketState::kOther:
      break;
  }
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      "cannot reach supermachined at " + path + ": " + std::strerror(d.error));
}

grpc::Status Client::Connect(const GlobalOptions& options, std::unique_ptr<Client>* out) {
  std::string path = ResolveSocketPath(options.socket);
  grpc::Status st = ExplainSocketProblem(DiagnoseSocket(path), path);
  if (!st.ok()) {
    return st;
  }
  auto channel = grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials());
  out->reset(new Client(path, options.timeout_seconds, v1::Supermachine::NewStub(channel)));
  return grpc::Status::OK;
}

std::unique_ptr<grpc::ClientContext> Client::UnaryContext() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds_ * 1000)));
  return ctx;
}

std::unique_ptr<grpc::ClientContext> Client::StreamContext() const {
  return std::make_unique<grpc::ClientContext>();
}

grpc::Status Client::Explain(const grpc::Status& status) const {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    // The daemon may have gone away between the check and the call.
    grpc::Status again = ExplainSocketProblem(DiagnoseSocket(socket_), socket_);
    if (!again.ok()) {
      return again;
    }
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "supermachined at " + socket_ + " is unavailable: " + status.error_message());
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      status.error_message() == "Deadline Exceeded") {
    // gRPC's own text: our deadline fired, not one the daemon reported.
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%g", timeout_seconds_);
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        std::string("supermachined at ") + socket_ + " did not answer within " +
                            secs + "s: check `journalctl -u supermachined`, or raise --timeout");
  }
  return status;
}

int ReportError(const grpc::Status& status) {
  std::fprintf(stderr, "smctl: %s\n", status.error_message().c_str());
  return ExitCodeForGrpc(status.error_code());
}

}  // namespace supermachine::cli
