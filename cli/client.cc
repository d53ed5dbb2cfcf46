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
#include <fstream>
#include <sstream>

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

// The flag, else the environment variable, else "".
std::string FlagOrEnv(const std::string& flag_value, const char* env_name) {
  if (!flag_value.empty()) {
    return flag_value;
  }
  const char* env = ::getenv(env_name);
  return env != nullptr ? env : "";
}

bool ReadWhole(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// TLS channel credentials plus the bearer token on every call, from --tls-ca, --tls-cert,
// --tls-key and --token-file (or their environment variables).
grpc::Status RemoteCredentials(const GlobalOptions& o,
                               std::shared_ptr<grpc::ChannelCredentials>* out) {
  const std::string token_file = FlagOrEnv(o.token_file, "SUPERMACHINE_TOKEN_FILE");
  if (token_file.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a remote daemon (--host) needs its bearer token: pass --token-file FILE "
                        "or set SUPERMACHINE_TOKEN_FILE");
  }
  std::string token;
  if (!ReadWhole(token_file, &token)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "cannot read the token file " + token_file);
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' ||
                            token.back() == ' ' || token.back() == '\t')) {
    token.pop_back();
  }
  grpc::SslCredentialsOptions ssl;
  const std::pair<const char*, std::string*> files[] = {
      {"SUPERMACHINE_TLS_CA", &ssl.pem_root_certs},
      {"SUPERMACHINE_TLS_CERT", &ssl.pem_cert_chain},
      {"SUPERMACHINE_TLS_KEY", &ssl.pem_private_key}};
  const std::string* flags[] = {&o.tls_ca, &o.tls_cert, &o.tls_key};
  for (size_t i = 0; i < 3; ++i) {
    const std::string path = FlagOrEnv(*flags[i], files[i].first);
    if (!path.empty() && !ReadWhole(path, files[i].second)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "cannot read " + path);
    }
  }
  if (ssl.pem_cert_chain.empty() != ssl.pem_private_key.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "--tls-cert and --tls-key go together (the client certificate for mTLS)");
  }
  *out = grpc::CompositeChannelCredentials(grpc::SslCredentials(ssl),
                                           grpc::AccessTokenCredentials(token));
  return grpc::Status::OK;
}

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

bool IsRemote(const GlobalOptions& options) {
  return !FlagOrEnv(options.host, "SUPERMACHINE_HOST").empty();
}

grpc::Status Client::Connect(const GlobalOptions& options, std::unique_ptr<Client>* out) {
  if (std::string host = FlagOrEnv(options.host, "SUPERMACHINE_HOST"); !host.empty()) {
    std::shared_ptr<grpc::ChannelCredentials> creds;
    grpc::Status st = RemoteCredentials(options, &creds);
    if (!st.ok()) {
      return st;
    }
    out->reset(new Client(host, options.timeout_seconds,
                          v1::Supermachine::NewStub(grpc::CreateChannel(host, creds))));
    (*out)->remote_ = true;
    return grpc::Status::OK;
  }
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
  if (remote_ && status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    // No socket to diagnose: the address, the TLS handshake (CA, mTLS certificate) or the
    // network; gRPC's text says which.
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "cannot reach supermachined at " + socket_ + " over TLS: " +
                            status.error_message() +
                            " (check --host, --tls-ca, and --tls-cert/--tls-key if the daemon "
                            "requires client certificates)");
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    // The daemon may have gone away between the check and the call.
    grpc::Status again = ExplainSocketProblem(DiagnoseSocket(socket_), socket_);
    if (!again.ok()) {
      return again;
    }
    if (DaemonAnswers()) {
      // The daemon is up: UNAVAILABLE is its own verdict on something it depends on (e.g. a
      // registry it cannot reach), and its message says which.
      return status;
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

bool Client::DaemonAnswers() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  v1::HealthResponse resp;
  return stub_->Health(ctx.get(), {}, &resp).ok();
}

grpc::Status Client::ExplainVmFailure(const grpc::Status& status) const {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::UNIMPLEMENTED:
    // The daemon could not reach something it needs (a registry): its message says what.
    case grpc::StatusCode::UNAVAILABLE:
      return status;  // the request itself was wrong or refused: the host is not the cause
    default:
      break;
  }
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  v1::HealthResponse health;
  if (!stub_->Health(ctx.get(), {}, &health).ok() || health.kvm() == "hardware") {
    return status;
  }
  // The daemon's KVM probe (daemon/api/kvm_probe.h) names the cause and the remedy; a
  // newcomer on a laptop VM or a cloud instance meets this first, under a restore error.
  std::string why = health.kvm() == "pvm"
                        ? "this host's KVM is PVM (paravirtualized, no hardware virtualization): "
                          "stock guest kernels do not boot on it"
                        : "this host has no usable hardware virtualization (KVM: " +
                              health.kvm() + "), so no VM can boot here";
  std::string msg = status.error_message() + "\n  likely cause: " + why;
  for (const std::string& p : health.problems()) {
    if (p.rfind("store ", 0) != 0) {
      msg += "\n  - " + p;
    }
  }
  msg += "\n  on such a host, try the emulated KVM lab: ./deploy/quickstart.sh (docs/quickstart.md)";
  return grpc::Status(status.error_code(), msg);
}

int ReportError(const grpc::Status& status) {
  std::fprintf(stderr, "smctl: %s\n", status.error_message().c_str());
  return ExitCodeForGrpc(status.error_code());
}

}  // namespace supermachine::cli
