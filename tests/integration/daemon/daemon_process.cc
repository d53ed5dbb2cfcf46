// File: daemon_process.cc
#include "tests/integration/daemon/daemon_process.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::test_support {

ScratchDir::ScratchDir() {
  std::string tmpl = "/tmp/smi-XXXXXX";
  path_ = ::mkdtemp(tmpl.data());
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<DaemonProcess> DaemonProcess::Start(const std::string& dir,
                                                   const std::vector<std::string>& extra_args,
                                                   const std::vector<std::string>& run_under) {
  const std::string socket = dir + "/sm.sock";
  const std::string state = dir + "/state";
  const std::string err_path = dir + "/supermachined.stderr";
  std::vector<std::string> argv = {SM_SUPERMACHINED_PATH, "--socket", socket, "--state-dir",
                                   state, "--metrics-address", "127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.insert(argv.begin(), run_under.begin(), run_under.end());
  base::UniqueFd err(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!err) {
    return base::ErrnoToStatus(errno, err_path);
  }
  SM_ASSIGN_OR_RETURN(base::ChildProcess child,
                      base::ChildProcess::Spawn({.argv = argv, .stderr_fd = err.get()}));
  static const std::regex kServing(R"(msg="serving".* metrics_port=(\d+))");
  // Generous: a restart reconciles journaled VMs (agent reconnects) before serving, and lab
  // machines may be several times slower than a developer's.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string text = ReadWholeFile(err_path);
    std::smatch m;
    if (std::regex_search(text, m, kServing)) {
      return DaemonProcess(std::move(child), socket, state, err_path, std::stoi(m[1].str()));
    }
    if (std::optional<base::ExitStatus> exit = child.TryWait()) {
      return absl::FailedPreconditionError(
          absl::StrCat("supermachined ", exit->ToString(), " before serving: ", text));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("supermachined did not log \"serving\" within 120 s: ", ReadWholeFile(err_path)));
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::string& scratch_dir) {
  const std::string out_path = scratch_dir + "/cmd.stdout";
  const std::string err_path = scratch_dir + "/cmd.stderr";
  base::UniqueFd out(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  base::UniqueFd err(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!out || !err) {
    return base::ErrnoToStatus(errno, "open output files in " + scratch_dir);
  }
  SM_ASSIGN_OR_RETURN(
      base::ChildProcess child,
      base::ChildProcess::Spawn({.argv = argv, .stdout_fd = out.get(), .stderr_fd = err.get()}));
  SM_ASSIGN_OR_RETURN(base::ExitStatus exit, child.WaitFor(absl::Seconds(30)));
  return CommandResult{exit, ReadWholeFile(out_path), ReadWholeFile(err_path)};
}

absl::StatusOr<CommandResult> RunDaemonToExit(const std::vector<std::string>& args,
                                              const std::string& scratch_dir) {
  std::vector<std::string> argv = {SM_SUPERMACHINED_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, scratch_dir);
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("connect 127.0.0.1:", port));
  }
  // A forward that accepts but never answers must fail the test, not hang it until ctest's
  // timeout; two minutes is far beyond any answer seen, even in the emulated lab.
  const timeval read_timeout{.tv_sec = 120, .tv_usec = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &read_timeout, sizeof(read_timeout));
  const std::string req = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (::write(fd.get(), req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    return base::ErrnoToStatus(errno, "write HTTP request");
  }
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof(buf))) > 0) {
    resp.append(buf, static_cast<size_t>(n));
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    return absl::DeadlineExceededError(absl::StrCat("GET 127.0.0.1:", port, path,
                                                    ": no answer within 120 s (",
                                                    resp.size(), " bytes received)"));
  }
  if (n < 0) {
    return base::ErrnoToStatus(errno, "read HTTP response");
  }
  return resp;
}

}  // namespace supermachine::test_support
