// File: local_registry.cc
// docker-registry config writing, start-up and readiness; tool runner for umoci/skopeo.
#include "tests/integration/image/local_registry.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/image/http_client.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::image::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(s.size() - n); }

}  // namespace

absl::StatusOr<std::string> RunTool(const std::vector<std::string>& argv, const std::string& home) {
  const std::string log_path = absl::StrCat(home, "/tool-", ::getpid(), "-", argv[0], ".log");
  base::UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!log) {
    return base::ErrnoToStatus(errno, absl::StrCat("open ", log_path));
  }
  const char* path = std::getenv("PATH");
  SM_ASSIGN_OR_RETURN(
      base::ChildProcess child,
      base::ChildProcess::Spawn({.argv = argv,
                                 .env = std::vector<std::string>{
                                     absl::StrCat("PATH=", path != nullptr ? path : "/usr/bin:/bin"),
                                     absl::StrCat("HOME=", home), absl::StrCat("TMPDIR=", home)},
                                 .stdout_fd = log.get(),
                                 .stderr_fd = log.get()}));
  SM_ASSIGN_OR_RETURN(base::ExitStatus exit, child.WaitFor(absl::Seconds(120)));
  const std::string output = ReadAll(log_path);
  if (!exit.success()) {
    return absl::InternalError(absl::StrCat(argv[0], " ", exit.ToString(), ": ", Tail(output, 2000)));
  }
  return output;
}

int FreeLoopbackPort() {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

absl::StatusOr<std::unique_ptr<LocalRegistry>> LocalRegistry::Start(const Options& options) {
  const int port = FreeLoopbackPort();
  std::string config = absl::StrCat(
      "version: 0.1\n"
      "log:\n  level: info\n"
      "storage:\n  filesystem:\n    rootdirectory: ", options.dir, "/storage\n"
      "  delete:\n    enabled: true\n"
      "http:\n  addr: 127.0.0.1:", port, "\n  secret: integration-test\n");
  if (options.basic_auth.has_value()) {
    SM_ASSIGN_OR_RETURN(std::string line, RunTool({"htpasswd", "-Bbn", options.basic_auth->first,
                                                   options.basic_auth->second},
                                                  options.dir));
    std::ofstream(absl::StrCat(options.dir, "/htpasswd")) << line;
    absl::StrAppend(&config, "auth:\n  htpasswd:\n    realm: supermachine-test\n    path: ", options.dir,
                    "/htpasswd\n");
  }
  if (options.token_auth.has_value()) {
    const auto& t = *options.token_auth;
    absl::StrAppend(&config, "auth:\n  token:\n    realm: ", t.realm, "\n    service: ", t.service,
                    "\n    issuer: ", t.issuer, "\n    rootcertbundle: ", t.root_cert_bundle, "\n");
  }
  std::ofstream(absl::StrCat(options.dir, "/config.yml")) << config;
  const std::string log_path = absl::StrCat(options.dir, "/registry.log");
  base::UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  SM_ASSIGN_OR_RETURN(base::ChildProcess child,
                      base::ChildProcess::Spawn({.argv = {"docker-registry", "serve",
                                                          absl::StrCat(options.dir, "/config.yml")},
                                                 .stdout_fd = log.get(),
                                                 .stderr_fd = log.get(),
                                                 .new_session = true}));
  std::unique_ptr<LocalRegistry> reg(new LocalRegistry(std::move(child), port, log_path));
  HttpClient http;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (!reg->child_.running() || reg->child_.TryWait().has_value()) {
      return absl::InternalError(absl::StrCat("docker-registry exited: ", Tail(reg->log(), 2000)));
    }
    auto resp = http.Do(HttpRequest{.url = absl::StrCat("http://", reg->host(), "/v2/"),
                                    .connect_timeout = absl::Seconds(1)});
    if (resp.ok() && (resp->status == 200 || resp->status == 401)) {
      return reg;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat("docker-registry did not answer on ", reg->host(),
                                                  " within 20 s: ", Tail(reg->log(), 2000)));
}

std::string LocalRegistry::log() const { return ReadAll(log_path_); }

}  // namespace supermachine::image::testing
