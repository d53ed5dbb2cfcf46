// File: storm_agent.cc
// The real guest agent's RPC server (guest-agent/rpc) as a host process on a Unix socket, for
// the exec storm (exec_storm_test.cc): exec runs real host commands through the agent's own
// reaper and stdio plumbing, in a process of its own as in a guest, so the daemon side's fds
// and threads can be counted alone. No workload: exec defaults are a plain PATH and "/".
// Usage: sm_storm_agent SOCKET_PATH (runs until killed).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "guest-agent/process/reaper.h"
#include "guest-agent/rpc/server.h"
#include "guest-agent/workload/workload_view.h"

namespace {

// A workload that never exits and has nothing parked: only exec is exercised.
class NoWorkload : public supermachine::agent::WorkloadView {
 public:
  std::optional<supermachine::agent::WorkloadExitInfo> WaitExit(int timeout_ms) override {
    if (timeout_ms > 0) {
      ::usleep(static_cast<useconds_t>(timeout_ms) * 1000);
    }
    return std::nullopt;
  }
  supermachine::agent::ExecDefaults exec_defaults() const override { return defaults_; }
  void Shutdown() override {}

 private:
  // Built once (GCC 12 misreports -Wrestrict on a string literal assigned per call).
  const supermachine::agent::ExecDefaults defaults_{
      .env = std::vector<std::string>{std::string("PATH=/usr/local/bin:/usr/bin:/bin")}};
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    std::fprintf(stderr, "storm agent: socket path too long: %s\n", path.c_str());
    return 2;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 128) != 0) {
    std::perror("storm agent: listen");
    return 1;
  }
  supermachine::agent::Reaper reaper;
  NoWorkload workload;
  supermachine::agent::rpc::Server server({.listen_fd = fd,
                                           .workload = &workload,
                                           .reaper = &reaper,
                                           .agent_version = "storm-agent"});
  server.Run();
  return 0;
}
