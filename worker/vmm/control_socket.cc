// File: control_socket.cc
// Line protocol over a Unix stream socket, served without blocking from the VM's event loop.
#include "worker/vmm/control_socket.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <limits>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::vmm {
namespace {

constexpr uint64_t kListenTag = ~0ull;

bool AddToEpoll(int epoll_fd, int fd, uint64_t tag) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag;
  return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0;
}

// Best effort: a client that does not read its replies loses them, the VM does not wait.
void Reply(int fd, const std::string& line) {
  std::string out = line + "\n";
  (void)!send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

absl::StatusOr<ControlCommand> ParseControlCommand(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  const size_t space = line.find(' ');
  const absl::string_view verb = line.substr(0, space);
  const absl::string_view arg =
      space == absl::string_view::npos ? absl::string_view()
                                       : absl::StripAsciiWhitespace(line.substr(space + 1));
  if (verb == "snapshot") {
    if (arg.empty()) {
      return absl::InvalidArgumentError("usage: snapshot DIR");
    }
    return ControlCommand{.verb = ControlVerb::kSnapshot, .argument = std::string(arg)};
  }
  if (verb == "balloon-target") {
    // Digits only: SimpleAtoi would also take a sign, and "-1" must not wrap to 4 Gi pages.
    uint32_t pages = 0;
    if (arg.empty() || !absl::c_all_of(arg, absl::ascii_isdigit) ||
        !absl::SimpleAtoi(arg, &pages)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "usage: balloon-target PAGES (a decimal count of 4 KiB pages up to ",
          std::numeric_limits<uint32_t>::max(), "; 0 deflates fully), got '", arg, "'"));
    }
    return ControlCommand{.verb = ControlVerb::kBalloonTarget, .pages = pages};
  }
  ControlVerb v;
  if (verb == "pause") {
    v = ControlVerb::kPause;
  } else if (verb == "resume") {
    v = ControlVerb::kResume;
  } else if (verb == "exit") {
    v = ControlVerb::kExit;
  } else if (verb == "stats") {
    v = ControlVerb::kStats;  // docs/networking.md "Metrics".
  } else if (verb == "balloon") {
    v = ControlVerb::kBalloon;  // docs/balloon.md.
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown command '", verb,
        "' (commands: pause, resume, snapshot DIR, exit, stats, balloon, balloon-target "
        "PAGES)"));
  }
  if (!arg.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", verb, "' takes no argument"));
  }
  return ControlCommand{.verb = v};
}

absl::StatusOr<std::unique_ptr<ControlSocket>> ControlSocket::Listen(const std::string& path,
                                                                     Handler handler) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("control socket path '", path, "' must be 1 to ",
                                                   sizeof(addr.sun_path) - 1, " bytes long"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  std::unique_ptr<ControlSocket> cs(new ControlSocket(path, std::move(handler)));
  cs->listen_ = base::UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!cs->listen_.valid()) {
    return base::ErrnoToStatus(errno, "control socket");
  }
  (void)unlink(path.c_str());
  if (bind(cs->listen_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("bind control socket ", path));
  }
  if (listen(cs->listen_.get(), 4) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("listen on control socket ", path));
  }
  cs->epoll_ = base::UniqueFd(epoll_create1(EPOLL_CLOEXEC));
  if (!cs->epoll_.valid() || !AddToEpoll(cs->epoll_.get(), cs->listen_.get(), kListenTag)) {
    return base::ErrnoToStatus(errno, "epoll for control socket");
  }
  return cs;
}

ControlSocket::~ControlSocket() {
  if (listen_.valid()) {
    (void)unlink(path_.c_str());
  }
}

void ControlSocket::Accept() {
  for (;;) {
    base::UniqueFd fd(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) {
      return;  // EAGAIN: no more pending; anything else: try again on the next readiness.
    }
    if (clients_.size() >= kMaxClients) {
      Reply(fd.get(), "ERR too many control connections");
      continue;
    }
    const int raw = fd.get();
    if (!AddToEpoll(epoll_.get(), raw, static_cast<uint64_t>(raw))) {
      continue;
    }
    clients_[raw] = Client{.fd = std::move(fd), .pending = {}};
  }
}

bool ControlSocket::Serve(Client& client) {
  char buf[1024];
  for (;;) {
    const ssize_t n = read(client.fd.get(), buf, sizeof(buf));
    if (n == 0) {
      return false;
    }
    if (n < 0) {
      return errno == EAGAIN || errno == EINTR;
    }
    client.pending.append(buf, static_cast<size_t>(n));
    size_t newline;
    while ((newline = client.pending.find('\n')) != std::string::npos) {
      std::string line = client.pending.substr(0, newline);
      client.pending.erase(0, newline + 1);
      Reply(client.fd.get(), handler_(line));
    }
    if (client.pending.size() > kMaxLine) {
      Reply(client.fd.get(), "ERR line too long");
      return false;
    }
  }
}

void ControlSocket::Process() {
  epoll_event events[8];
  const int n = epoll_wait(epoll_.get(), events, 8, 0);
  for (int i = 0; i < n; ++i) {
    const uint64_t tag = events[i].data.u64;
    if (tag == kListenTag) {
      Accept();
      continue;
    }
    auto it = clients_.find(static_cast<int>(tag));
    if (it != clients_.end() && !Serve(it->second)) {
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->first, nullptr);
      clients_.erase(it);
    }
  }
}

}  // namespace supermachine::vmm
