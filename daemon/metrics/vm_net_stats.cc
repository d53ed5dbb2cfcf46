// File: vm_net_stats.cc
#include "daemon/metrics/vm_net_stats.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::metrics {
namespace {

// A stats reply is one short line; a longer answer is not one.
constexpr size_t kMaxReply = 4096;

absl::Status NotAReply(absl::string_view line) {
  return absl::InvalidArgumentError(
      absl::StrCat("worker stats reply '", line.substr(0, 200), "' is not 'OK net ...'"));
}

// Milliseconds left until `deadline` for poll(), at least 0.
int PollTimeout(absl::Time deadline) {
  const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 60'000));
}

absl::Status WaitFor(int fd, int16_t events, absl::Time deadline, absl::string_view what) {
  pollfd p{.fd = fd, .events = events, .revents = 0};
  while (true) {
    const int n = ::poll(&p, 1, PollTimeout(deadline));
    if (n > 0) {
      return absl::OkStatus();
    }
    if (n == 0) {
      return absl::UnavailableError(absl::StrCat("worker control socket: no ", what,
                                                 " before the deadline"));
    }
    if (errno != EINTR) {
      return base::ErrnoToStatus(errno, "poll the worker control socket");
    }
  }
}

}  // namespace

absl::StatusOr<VmNetStats> ParseStatsReply(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  VmNetStats s;
  if (line == "OK net=none") {
    return s;
  }
  absl::string_view rest = line;
  if (!absl::ConsumePrefix(&rest, "OK net ")) {
    return NotAReply(line);
  }
  s.enabled = true;
  struct Counter {
    absl::string_view key;
    uint64_t* value;
  };
  const Counter counters[] = {
      {"rx_packets", &s.rx_packets},         {"rx_bytes", &s.rx_bytes},
      {"tx_packets", &s.tx_packets},         {"tx_bytes", &s.tx_bytes},
      {"dropped_policy", &s.dropped_policy}, {"dropped_malformed", &s.dropped_malformed},
      {"dropped_rx", &s.dropped_rx},         {"reset_stale", &s.reset_stale},
  };
  for (absl::string_view item : absl::StrSplit(rest, ' ', absl::SkipEmpty())) {
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return NotAReply(line);
    }
    const absl::string_view key = item.substr(0, eq);
    const absl::string_view value = item.substr(eq + 1);
    if (key == "mac") {
      s.mac = std::string(value);
    } else if (key == "egress") {
      s.egress_policy = std::string(value);  // canonical: no spaces
    } else {
      for (const Counter& c : counters) {
        if (c.key == key && !absl::SimpleAtoi(value, c.value)) {
          return NotAReply(line);
        }
      }
    }
  }
  return s;
}

absl::StatusOr<VmNetStats> ReadVmNetStats(const std::string& control_socket, absl::Time deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (control_socket.empty() || control_socket.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker control socket path '", control_socket, "' is empty or too long"));
  }
  std::memcpy(addr.sun_path, control_socket.data(), control_socket.size());
  base::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    return base::ErrnoToStatus(errno, "socket");
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    // A Unix socket connects at once or not at all (EAGAIN: backlog full, treated alike).
    return absl::UnavailableError(absl::StrCat("connect to the worker control socket ",
                                               control_socket, ": ", std::strerror(errno)));
  }
  static constexpr char kStats[] = "stats\n";
  SM_RETURN_IF_ERROR(WaitFor(fd.get(), POLLOUT, deadline, "room to send"));
  if (::send(fd.get(), kStats, sizeof(kStats) - 1, MSG_NOSIGNAL) !=
      static_cast<ssize_t>(sizeof(kStats) - 1)) {
    return base::ErrnoToStatus(errno, absl::StrCat("send stats to ", control_socket));
  }
  std::string reply;
  std::vector<char> buf(512);
  while (reply.find('\n') == std::string::npos) {
    if (reply.size() > kMaxReply) {
      return NotAReply(reply);
    }
    SM_RETURN_IF_ERROR(WaitFor(fd.get(), POLLIN, deadline, "stats reply"));
    const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
    if (n == 0) {
      return absl::UnavailableError(
          absl::StrCat("worker control socket ", control_socket, " closed without a reply"));
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      return base::ErrnoToStatus(errno, absl::StrCat("read stats from ", control_socket));
    }
    reply.append(buf.data(), static_cast<size_t>(n));
  }
  return ParseStatsReply(absl::string_view(reply).substr(0, reply.find('\n')));
}

}  // namespace supermachine::metrics
