// File: tests/fuzz/agent/client_fuzz.cc
// Fuzz target for the daemon's side of the agent protocol (daemon/agent): everything the
// guest agent sends back is untrusted, since the guest runs the user's code and may replace
// the agent. Input byte 0 picks one AgentClient operation; the rest is the agent's whole
// reply stream (frames, file data, exec output...), after which the agent half-closes. The
// client must turn every malformed, unexpected or truncated reply into a Status (the wire
// conversions in wire.cc included) and never crash, hang or buffer without bound.
// agent_frame_fuzz covers the other direction (the guest agent reading host requests).
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "daemon/agent/agent_client.h"
#include "daemon/agent/dialer.h"
#include "worker/base/unique_fd.h"

namespace {

namespace agent = supermachine::agent;
using supermachine::base::UniqueFd;

// Each Dial returns a fresh stream whose far end has already "sent" the reply bytes and
// half-closed. The far ends stay open (so the client's requests do not fail with EPIPE)
// until the dialer goes away.
class ScriptedDialer : public agent::Dialer {
 public:
  explicit ScriptedDialer(std::string reply) : reply_(std::move(reply)) {}

  absl::StatusOr<UniqueFd> Dial(absl::Time /*deadline*/) const override {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      return absl::UnavailableError("socketpair failed");
    }
    UniqueFd mine(fds[0]);
    UniqueFd agent_end(fds[1]);
    // Room for the whole reply (inputs are far below this), so the write cannot block.
    const int buf = 1 << 20;
    (void)setsockopt(agent_end.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    (void)setsockopt(mine.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    size_t done = 0;
    while (done < reply_.size()) {
      const ssize_t n = send(agent_end.get(), reply_.data() + done, reply_.size() - done,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) {
        break;
      }
      done += static_cast<size_t>(n);
    }
    (void)shutdown(agent_end.get(), SHUT_WR);
    std::lock_guard<std::mutex> lock(mu_);
    far_ends_.push_back(std::move(agent_end));
    return mine;
  }
  std::string Describe() const override { return "fuzz agent"; }

 private:
  std::string reply_;
  mutable std::mutex mu_;
  mutable std::vector<UniqueFd> far_ends_;
};

enum Op : uint8_t {
  kPing, kRun, kRunStdin, kWriteFile, kReadFile, kStat, kConnect, kWaitReady, kWaitExit,
  kRestored, kShutdown, kNumOps
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const agent::AgentClient client(std::make_unique<ScriptedDialer>(
      std::string(reinterpret_cast<const char*>(data + 1), size - 1)));
  // Generous: every read ends at the half-close long before this.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  switch (static_cast<Op>(data[0] % kNumOps)) {
    case kPing:
      (void)client.Ping(deadline);
      break;
    case kRun:
      (void)client.RunCommand({.argv = {"sh", "-c", "true"}}, "", deadline,
                              {.max_output_bytes = 64});
      break;
    case kRunStdin:
      (void)client.RunCommand({.argv = {"cat"}, .tty = true, .attach_stdin = true},
                              "some stdin", deadline);
      break;
    case kWriteFile:
      (void)client.WriteFile("/tmp/f", "file data", {.make_parents = true}, deadline);
      break;
    case kReadFile:
      (void)client.ReadFile("/etc/passwd", data[0] & 0x80 ? 16 : 0, deadline);
      break;
    case kStat:
      (void)client.Stat("/etc", deadline);
      break;
    case kConnect: {
      auto fd = client.Connect(8080, deadline, "::1");
      (void)fd;
      break;
    }
    case kWaitReady:
      (void)client.WaitReady(agent::ReadyCondition::ListenerPort(80), deadline);
      (void)client.WaitReady(agent::ReadyCondition::Idle(absl::Milliseconds(5)), deadline);
      break;
    case kWaitExit:
      (void)client.WaitExit(deadline);
      break;
    case kRestored:
      (void)client.Restored({.entropy = std::string(32, 'e'), .vm_id = "vm", .generation = 3},
                            deadline);
      break;
    case kShutdown:
      (void)client.Shutdown(deadline);
      break;
    case kNumOps:
      break;
  }
  return 0;
}
