// File: muxer.cc
// Hybrid-vsock host sockets: listener, CONNECT handshake, guest-initiated connects, routing.
#include "worker/devices/virtio/vsock/muxer.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "worker/base/status_macros.h"

namespace supermachine::devices::virtio::vsock {
namespace {

// epoll tags: kind in the high half, the fd in the low half.
enum Kind : uint64_t { kListener = 1, kTimer = 2, kHandshake = 3, kConn = 4 };
uint64_t Tag(Kind kind, int fd) { return (static_cast<uint64_t>(kind) << 32) | static_cast<uint32_t>(fd); }

constexpr uint32_t kConnEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

absl::StatusOr<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("vsock socket path '", path, "' must be 1..",
                                                   sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace

std::optional<uint32_t> ParseConnectLine(absl::string_view line) {
  if (!absl::ConsumePrefix(&line, "CONNECT ")) {
    return std::nullopt;
  }
  line = absl::StripTrailingAsciiWhitespace(line);  // Tolerate "\r\n".
  uint32_t port;
  if (line.empty() || line.size() > 10 || !absl::SimpleAtoi(line, &port) ||
      !std::all_of(line.begin(), line.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return port;
}

absl::StatusOr<std::unique_ptr<Muxer>> Muxer::Create(MuxerOptions options) {
  SM_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(options.uds_path));
  // Guest-initiated connections append "_<port>" (up to 11 bytes); refuse a path that leaves
  // no room, instead of failing every such connect later.
  if (options.uds_path.size() + 11 >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("vsock socket path '", options.uds_path, "' is too long: at most ",
                     sizeof(addr.sun_path) - 12, " bytes leave room for the \"_<port>\" suffix"));
  }
  if (options.first_host_port < kFirstHostPort) {
    return absl::InvalidArgumentError(
        absl::StrCat("vsock: first host port ", options.first_host_port, " is below ",
                     kFirstHostPort, " (the range below is the guest's)"));
  }
  struct stat st;
  if (lstat(options.uds_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "vsock socket path '", options.uds_path, "' exists and is not a socket; remove it"));
    }
    unlink(options.uds_path.c_str());  // A stale socket from an earlier worker.
  }
  base::UniqueFd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener.valid()) {
    return base::ErrnoToStatus(errno, "vsock: socket(AF_UNIX)");
  }
  if (bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vsock: bind '", options.uds_path, "'"));
  }
  if (listen(listener.get(), 128) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("vsock: listen '", options.uds_path, "'"));
  }
  base::UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  base::UniqueFd timer(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!ep.valid() || !timer.valid()) {
    return base::ErrnoToStatus(errno, "vsock: epoll/timerfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;  // Level-triggered: AcceptAll drains it anyway.
  ev.data.u64 = Tag(kListener, listener.get());
  if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, listener.get(), &ev) != 0) {
    return base::ErrnoToStatus(errno, "vsock: epoll_ctl listener");
  }
  ev.data.u64 = Tag(kTimer, timer.get());
  if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, timer.get(), &ev) != 0) {
    return base::ErrnoToStatus(errno, "vsock: epoll_ctl timer");
  }
  return std::unique_ptr<Muxer>(
      new Muxer(std::move(options), std::move(listener), std::move(ep), std::move(timer)));
}

Muxer::~Muxer() { unlink(options_.uds_path.c_str()); }

const Connection* Muxer::FindForTest(ConnKey key) const {
  auto it = conns_.find(key);
  return it == conns_.end() ? nullptr : it->second.get();
}

void Muxer::ProcessHostEvents() {
  epoll_event events[64];
  const int n = epoll_wait(epoll_.get(), events, 64, 0);
  for (int i = 0; i < n; ++i) {
    const auto kind = static_cast<Kind>(events[i].data.u64 >> 32);
    const int fd = static_cast<int>(events[i].data.u64 & 0xffffffffu);
    switch (kind) {
      case kListener:
        AcceptAll();
        break;
      case kTimer: {
        uint64_t expirations;
        (void)!read(timer_.get(), &expirations, sizeof(expirations));
        Sweep();
        break;
      }
      case kHandshake:
        OnHandshakeReadable(fd);
        break;
      case kConn: {
        auto it = by_fd_.find(fd);
        if (it == by_fd_.end()) {
          break;
        }
        auto c = conns_.find(it->second);
        if (c != conns_.end()) {
          c->second->OnHostEvents(events[i].events);
          Update(c->second.get());
        }
        break;
      }
    }
  }
}

void Muxer::AcceptAll() {
  while (true) {
    base::UniqueFd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      return;  // EAGAIN, or EMFILE and friends: nothing we can do for now.
    }
    if (total_connections() >= options_.max_connections) {
      continue;  // Closed on scope exit: the client sees EOF instead of an "OK".
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = Tag(kHandshake, fd.get());
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
      continue;
    }
    const int raw = fd.get();
    handshakes_[raw] = Handshake{.fd = std::move(fd),
                                 .deadline = std::chrono::steady_clock::now() +
                                             options_.connect_timeout};
    ArmTimer();
    // The line may already be there (edge-triggered: no event for data that came before ADD
    // is guaranteed only if we look now).
    OnHandshakeReadable(raw);
  }
}

void Muxer::OnHandshakeReadable(int fd) {
  auto it = handshakes_.find(fd);
  if (it == handshakes_.end()) {
    return;
  }
  // Peek first and take exactly the line: bytes after it are stream data for the guest.
  char buf[kMaxConnectLine];
  ssize_t n;
  do {
    n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    return;
  }
  auto close_it = [&] {
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    handshakes_.erase(it);
  };
  if (n <= 0) {
    close_it();  // EOF or error before a full line.
    return;
  }
  const char* nl = static_cast<const char*>(std::memchr(buf, '\n', static_cast<size_t>(n)));
  if (nl == nullptr) {
    if (static_cast<size_t>(n) >= sizeof(buf)) {
      close_it();  // Too long to be a CONNECT line.
    }
    return;  // Partial line: wait for more.
  }
  const size_t line_len = static_cast<size_t>(nl - buf) + 1;
  (void)!recv(fd, buf, line_len, MSG_DONTWAIT);  // Consume exactly the peeked line.
  std::optional<uint32_t> port = ParseConnectLine(absl::string_view(buf, line_len - 1));
  if (!port.has_value() || !guest_ready_) {
    close_it();
    return;
  }
  const ConnKey key{.local_port = AllocateLocalPort(), .peer_port = *port};
  base::UniqueFd sock = std::move(it->second.fd);
  handshakes_.erase(it);
  epoll_event ev{};
  ev.events = kConnEvents;
  ev.data.u64 = Tag(kConn, fd);
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
    return;  // `sock` closes.
  }
  auto conn = Connection::HostInitiated(std::move(sock), key, options_.guest_cid);
  conn->set_deadline(std::chrono::steady_clock::now() + options_.connect_timeout);
  Connection* raw = conn.get();
  by_fd_[fd] = key;
  conns_[key] = std::move(conn);
  ArmTimer();
  Update(raw);
}

uint32_t Muxer::AllocateLocalPort() {
  // Skip ports in use by any connection (guest-initiated keys use the guest's target port as
  // local port, so a clash is possible only for guests that connect to ports >= 2^30).
  while (true) {
    const uint32_t p = next_local_port_++;
    if (next_local_port_ == 0) {
      next_local_port_ = kFirstHostPort;
    }
    auto it = conns_.lower_bound(ConnKey{.local_port = p, .peer_port = 0});
    if (it == conns_.end() || it->first.local_port != p) {
      return p;
    }
  }
}

void Muxer::QueueRst(const Header& h) {
  if (h.op_code() == Op::kRst) {
    return;  // Never answer a RST (two sides would bounce RSTs forever).
  }
  rst_queue_.push_back(Header{.src_cid = kHostCid,
                              .dst_cid = options_.guest_cid,
                              .src_port = h.dst_port,
                              .dst_port = h.src_port,
                              .len = 0,
                              .type = kTypeStream,
                              .op = static_cast<uint16_t>(Op::kRst)});
}

void Muxer::HandleGuestPacket(const Header& h, absl::Span<const uint8_t> payload) {
  if (h.src_cid != options_.guest_cid) {
    return;  // Spoofed source: there is nobody to answer.
  }
  if (h.dst_cid != kHostCid || h.type != kTypeStream) {
    QueueRst(h);  // Only the host and streams live here; fail fast rather than hang the guest.
    return;
  }
  const ConnKey key{.local_port = h.dst_port, .peer_port = h.src_port};
  auto it = conns_.find(key);
  if (it == conns_.end()) {
    if (h.op_code() == Op::kRequest) {
      GuestConnect(h);
    } else {
      QueueRst(h);
    }
    return;
  }
  it->second->OnGuestPacket(h, payload);
  Update(it->second.get());
}

void Muxer::HandleMalformedPacket(const Header& h) {
  if (h.src_cid != options_.guest_cid) {
    return;
  }
  auto it = conns_.find(ConnKey{.local_port = h.dst_port, .peer_port = h.src_port});
  if (it != conns_.end()) {
    it->second->Abort();
    Update(it->second.get());
  } else {
    QueueRst(h);
  }
}

void Muxer::GuestConnect(const Header& req) {
  if (total_connections() >= options_.max_connections) {
    QueueRst(req);
    return;
  }
  absl::StatusOr<sockaddr_un> addr =
      UnixAddress(absl::StrCat(options_.uds_path, "_", req.dst_port));
  base::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  // A Unix connect completes (or fails) at once; EAGAIN means the listener's backlog is full,
  // which we treat as a refusal like any other.
  if (!addr.ok() || !fd.valid() ||
      connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    QueueRst(req);
    return;
  }
  epoll_event ev{};
  ev.events = kConnEvents;
  ev.data.u64 = Tag(kConn, fd.get());
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
    QueueRst(req);
    return;
  }
  const int raw_fd = fd.get();
  auto conn = Connection::GuestInitiated(std::move(fd), req, options_.guest_cid);
  const ConnKey key = conn->key();
  Connection* raw = conn.get();
  by_fd_[raw_fd] = key;
  conns_[key] = std::move(conn);
  Update(raw);
}

void Muxer::Update(Connection* c) {
  if (c->closed()) {
    Remove(c->key());
    return;
  }
  if (c->host_gone() && !c->resetting() && closing_.insert(c->key()).second) {
    c->set_deadline(std::chrono::steady_clock::now() + options_.close_timeout);
    ArmTimer();
  }
  if (c->WantsRx() && in_rx_order_.insert(c->key()).second) {
    rx_order_.push_back(c->key());
  }
}

void Muxer::Remove(ConnKey key) {
  auto it = conns_.find(key);
  if (it == conns_.end()) {
    return;
  }
  const int fd = it->second->host_fd();
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  by_fd_.erase(fd);
  closing_.erase(key);
  conns_.erase(it);  // Closes the host socket.
  // A stale entry in rx_order_ is skipped by ProduceRx.
}

std::optional<Header> Muxer::ProduceRx(absl::Span<const iovec> space) {
  if (!rst_queue_.empty()) {
    Header h = rst_queue_.front();
    rst_queue_.pop_front();
    return h;
  }
  // One pass at most: a connection that wants rx but cannot use this buffer goes to the back
  // of the line and must not keep us here.
  for (size_t budget = rx_order_.size(); budget > 0 && !rx_order_.empty(); --budget) {
    const ConnKey key = rx_order_.front();
    rx_order_.pop_front();
    in_rx_order_.erase(key);
    auto it = conns_.find(key);
    if (it == conns_.end()) {
      continue;
    }
    Connection* c = it->second.get();
    std::optional<Header> h = c->ProduceRx(space);
    if (h.has_value() && h->op_code() == Op::kRw && closing_.count(key) > 0) {
      // The host side is gone but the guest is still taking its last bytes: not stuck.
      c->set_deadline(std::chrono::steady_clock::now() + options_.close_timeout);
    }
    Update(c);  // Back of the line if it wants more, gone if closed.
    if (h.has_value()) {
      return h;
    }
  }
  return std::nullopt;
}

void Muxer::DropAllConnections() {
  for (auto& [key, conn] : conns_) {
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, conn->host_fd(), nullptr);
  }
  conns_.clear();
  by_fd_.clear();
  closing_.clear();
  rx_order_.clear();
  in_rx_order_.clear();
  rst_queue_.clear();
}

void Muxer::ArmTimer() {
  if (timer_armed_) {
    return;
  }
  // A coarse tick is enough for deadlines measured in seconds.
  itimerspec its{};
  its.it_interval.tv_nsec = 250'000'000;
  its.it_value.tv_nsec = 250'000'000;
  timer_armed_ = timerfd_settime(timer_.get(), 0, &its, nullptr) == 0;
}

void Muxer::Sweep() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = handshakes_.begin(); it != handshakes_.end();) {
    if (now >= it->second.deadline) {
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->first, nullptr);
      it = handshakes_.erase(it);
    } else {
      ++it;
    }
  }
  bool waiting = false;
  std::vector<Connection*> expired;
  for (auto& [key, conn] : conns_) {
    if (conn->resetting()) {
      continue;  // Already on its way out.
    }
    if (conn->state() == Connection::State::kConnecting || closing_.count(key) > 0) {
      if (now >= conn->deadline()) {
        expired.push_back(conn.get());
      } else {
        waiting = true;
      }
    }
  }
  for (Connection* c : expired) {
    // Connecting: the host client gets EOF now; the RST tells the guest to drop a
    // late-arriving REQUEST. Closing: the RST makes the guest let go.
    closing_.erase(c->key());
    c->Abort();
    Update(c);
  }
  if (!waiting && handshakes_.empty()) {
    itimerspec off{};
    timerfd_settime(timer_.get(), 0, &off, nullptr);
    timer_armed_ = false;
  }
}

}  // namespace supermachine::devices::virtio::vsock
