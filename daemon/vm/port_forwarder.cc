// File: port_forwarder.cc
// Host TCP listener → agent Connect, on one Boost.Asio io_context per forwarder: accept on
// readiness, the blocking connector on a small on-demand thread pool, then each connection
// spliced with one bounded buffer per direction, so a stalled direction never stops the other.
#include "daemon/vm/port_forwarder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "worker/base/status_macros.h"

namespace supermachine::vm {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
// Both ends are held as generic stream sockets: the client is TCP, the guest end is whatever
// the connector returns (a Unix socket for the agent's vsock), and one type lets one splice
// routine serve both directions.
using Socket = asio::generic::stream_protocol::socket;

// Bytes read from one side and not yet written to the other; a side is read again only once
// they are all written, so each direction holds at most this much (backpressure).
constexpr size_t kSpliceBuffer = size_t{64} * 1024;

// After an accept error that is not about one connection (EMFILE, ENOBUFS...) the listener is
// retried after this pause instead of in a busy loop.
constexpr std::chrono::milliseconds kAcceptRetry{100};
// Connections accepted in one turn of the io loop before other handlers get theirs.
constexpr int kAcceptBatch = 64;

// Runs blocking jobs (connector calls) off the io thread. Threads start only when every
// existing one is busy, up to a maximum; later jobs queue. Idle threads stay until Stop.
class ConnectPool {
 public:
  // `cancelled` is true when the pool is stopping and the job must only clean up.
  using Job = std::function<void(bool cancelled)>;

  explicit ConnectPool(size_t max_threads) : max_threads_(max_threads) {}
  ~ConnectPool() { Stop(); }
  ConnectPool(const ConnectPool&) = delete;
  ConnectPool& operator=(const ConnectPool&) = delete;

  void Submit(Job job) {
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_) {
        queue_.push_back(std::move(job));
        if (queue_.size() > idle_ && threads_.size() < max_threads_) {
          threads_.emplace_back([this] { Work(); });
        }
        cv_.Signal();
        return;
      }
    }
    job(/*cancelled=*/true);
  }

  // From now on jobs (queued or submitted later) run cancelled; running ones carry on.
  void BeginStop() {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }

  // BeginStop, then waits for the running jobs (a connector returns by its deadline) and the
  // cancelled rest; joins every thread.
  void Stop() {
    BeginStop();
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) {
      t.join();
    }
  }

 private:
  void Work() {
    absl::MutexLock lock(&mu_);
    while (true) {
      while (queue_.empty() && !stopping_) {
        ++idle_;
        cv_.Wait(&mu_);
        --idle_;
      }
      if (queue_.empty()) {
        return;  // stopping and nothing left
      }
      Job job = std::move(queue_.front());
      queue_.pop_front();
      const bool cancelled = stopping_;
      mu_.Unlock();
      job(cancelled);
      job = nullptr;  // drop its captures outside the lock
      mu_.Lock();
    }
  }

  const size_t max_threads_;
  absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

class PortForwarder::Impl {
 public:
  Impl(base::UniqueFd listener, Connector connector)
      : connector_(std::move(connector)), pool_(kMaxConnectThreads) {
    error_code ec;
    acceptor_.assign(asio::ip::tcp::v4(), listener.get(), ec);
    if (!ec) {
      listener.Release();  // the acceptor owns it now
    }
    assign_error_ = ec;
  }
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  error_code assign_error() const { return assign_error_; }
  void Run();

 private:
  class Connection;

  // Waits until the listener is readable, then AcceptReady.
  void Accept();
  void AcceptReady();
  void Forget(Connection* conn) { conns_.erase(conn); }

  const Connector connector_;
  error_code assign_error_;
  asio::io_context io_{1};  // one thread runs it
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  asio::ip::tcp::acceptor acceptor_{io_};
  asio::steady_timer accept_retry_{io_};
  // Only the io thread touches these two.
  bool stopping_ = false;
  // Every connection from accept to its end, so destruction can reset them all.
  std::map<Connection*, std::shared_ptr<Connection>> conns_;
  // After the members its jobs use (connector_, io_); ~Impl joins it before they go.
  ConnectPool pool_;
  std::thread thread_;
};

// One accepted client: connecting (client only), then spliced to the guest, then ended.
// Owned by the forwarder's registry until it ends and by its pending handlers; all of it runs
// on the io thread.
class PortForwarder::Impl::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Impl* fwd, asio::io_context& io) : fwd_(fwd), client_(io), guest_(io) {}

  // The accepted client; false when it cannot be used (the fd is closed).
  bool AdoptClient(base::UniqueFd fd) { return Adopt(client_, std::move(fd)); }

  // The connector's result: splice to the guest or close the client.
  void OnConnected(absl::StatusOr<base::UniqueFd> guest) {
    if (closed_) {
      return;  // the forwarder is going away; `guest` closes here
    }
    if (!guest.ok() || !Adopt(guest_, std::move(*guest))) {
      // The guest port cannot be reached: the client sees the connection close, as with a
      // refusal, now rather than never.
      End(/*clean=*/true);
      return;
    }
    Pump(up_);
    Pump(down_);
    Watch(client_);
    Watch(guest_);
  }

  // Closes both ends. Clean: the client gets a FIN. Otherwise a RST, so an abnormal end never
  // looks like a complete answer (HTTP/1.0 bodies end at EOF).
  void End(bool clean) {
    if (closed_) {
      return;
    }
    closed_ = true;
    error_code ignored;
    if (clean) {
      client_.sock.shutdown(asio::socket_base::shutdown_both, ignored);
    } else {
      client_.sock.set_option(asio::socket_base::linger(true, 0), ignored);
    }
    client_.sock.close(ignored);  // cancels every pending operation on it
    guest_.sock.close(ignored);
    fwd_->Forget(this);  // callers hold a reference, so this outlives the call
  }

 private:
  struct Side {
    explicit Side(asio::io_context& io) : sock(io) {}
    Socket sock;
    bool hup = false;  // closed both ways by the peer (POLLHUP): it takes nothing more
  };
  struct Direction {
    Side* from;
    Side* to;
    std::unique_ptr<char[]> buf = std::make_unique<char[]>(kSpliceBuffer);
    bool done = false;  // EOF read from `from` and passed on to `to` as a half-close
  };

  // Takes over a connected stream socket of any family (TCP client, Unix guest end).
  static bool Adopt(Side& side, base::UniqueFd fd) {
    auto option = [&fd](int name) {
      int value = -1;
      socklen_t len = sizeof(value);
      return ::getsockopt(fd.get(), SOL_SOCKET, name, &value, &len) == 0 ? value : -1;
    };
    const int domain = option(SO_DOMAIN);
    const int protocol = option(SO_PROTOCOL);
    if (domain < 0 || protocol < 0 || option(SO_TYPE) != SOCK_STREAM) {
      return false;  // not a stream socket: nothing to splice to
    }
    error_code ec;
    side.sock.assign(asio::generic::stream_protocol(domain, protocol), fd.get(), ec);
    if (ec) {
      return false;
    }
    fd.Release();  // the socket owns it now
    return true;
  }

  // One round of a direction: read what is there (≤ kSpliceBuffer), write all of it, repeat.
  void Pump(Direction& d) {
    d.from->sock.async_read_some(
        asio::buffer(d.buf.get(), kSpliceBuffer),
        [self = shared_from_this(), &d](const error_code& ec, size_t n) {
          self->OnRead(d, ec, n);
        });
  }

  void OnRead(Direction& d, const error_code& ec, size_t n) {
    if (closed_) {
      return;
    }
    if (ec == asio::error::eof) {
      // Half-close: the peer sees EOF and may still answer.
      error_code ignored;
      d.to->sock.shutdown(asio::socket_base::shutdown_send, ignored);
      d.done = true;
      MaybeEnd();
      return;
    }
    if (ec) {
      End(/*clean=*/false);  // a reset: the other side must not wait for what cannot come
      return;
    }
    asio::async_write(d.to->sock, asio::buffer(d.buf.get(), n),
                      [self = shared_from_this(), &d](const error_code& wec, size_t) {
                        if (self->closed_) {
                          return;
                        }
                        if (wec) {
                          self->End(/*clean=*/false);  // the receiver is gone
                          return;
                        }
                        self->Pump(d);
                      });
  }

  // A normal end: both EOFs passed on, or a side that hung up completely has also said EOF
  // (whatever the other direction still carries into it is undeliverable).
  void MaybeEnd() {
    if ((up_.done && down_.done) || (client_.hup && up_.done) || (guest_.hup && down_.done)) {
      End(/*clean=*/true);
    }
  }

  // Reads and writes see a reset only when one is pending on that side; a direction busy
  // writing elsewhere would miss it, so each side is also watched for errors and hang-ups.
  void Watch(Side& s) {
    s.sock.async_wait(asio::socket_base::wait_error,
                      [self = shared_from_this(), &s](const error_code& ec) {
                        if (self->closed_ || ec || s.hup) {
                          return;
                        }
                        self->Watch(s);
                      });
    // The wait fires on the next edge; a hang-up reported before it was armed shows here.
    Inspect(s);
  }

  void Inspect(Side& s) {
    if (closed_ || s.hup) {
      return;
    }
    pollfd p{.fd = s.sock.native_handle(), .events = 0, .revents = 0};
    if (::poll(&p, 1, 0) != 1) {
      return;
    }
    if ((p.revents & (POLLERR | POLLNVAL)) != 0) {
      End(/*clean=*/false);
    } else if ((p.revents & POLLHUP) != 0) {
      s.hup = true;
      MaybeEnd();
    }
  }

  Impl* const fwd_;
  Side client_;
  Side guest_;
  Direction up_{.from = &client_, .to = &guest_};    // client → guest
  Direction down_{.from = &guest_, .to = &client_};  // guest → client
  bool closed_ = false;
};

void PortForwarder::Impl::Run() {
  Accept();
  thread_ = std::thread([this] { io_.run(); });
}

PortForwarder::Impl::~Impl() {
  if (!thread_.joinable()) {
    return;  // never ran
  }
  // First the pool, so that no queued connect starts once the clients see their resets.
  pool_.BeginStop();
  asio::post(io_, [this] {
    stopping_ = true;
    error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
    std::map<Connection*, std::shared_ptr<Connection>> conns;
    conns.swap(conns_);
    for (auto& [ptr, conn] : conns) {
      conn->End(/*clean=*/false);
    }
  });
  // Connects still queued hand back cancelled results; running ones return by their deadline.
  // Their results are posted to the io thread, which is still running: it drops them.
  pool_.Stop();
  // With every socket closed and the pool joined nothing can add work: run() returns.
  work_.reset();
  thread_.join();
}

void PortForwarder::Impl::Accept() {
  acceptor_.async_wait(asio::socket_base::wait_read, [this](const error_code& ec) {
    if (!ec && !stopping_) {
      AcceptReady();
    }
  });
}

// accept4 by hand rather than async_accept: Asio's accept does not set close-on-exec, and a
// client fd inherited by a worker the daemon spawns would keep that connection open.
void PortForwarder::Impl::AcceptReady() {
  // Drained until EAGAIN (the wait is edge-triggered), a batch per turn so a burst of
  // clients does not hold up the splices.
  for (int i = 0; i < kAcceptBatch; ++i) {
    base::UniqueFd fd(
        ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        Accept();
        return;
      }
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;  // about that one connection only
      }
      // EMFILE, ENOBUFS...: would fail again at once, so pause rather than spin.
      accept_retry_.expires_after(kAcceptRetry);
      accept_retry_.async_wait([this](const error_code& ec) {
        if (!ec && !stopping_) {
          AcceptReady();
        }
      });
      return;
    }
    auto conn = std::make_shared<Connection>(this, io_);
    if (!conn->AdoptClient(std::move(fd))) {
      continue;
    }
    conns_.emplace(conn.get(), conn);
    const absl::Time deadline = absl::Now() + kConnectTimeout;
    pool_.Submit([this, conn, deadline](bool cancelled) mutable {
      absl::StatusOr<base::UniqueFd> guest =
          cancelled ? absl::CancelledError("port forwarder stopped") : connector_(deadline);
      // The connection is handed over whole: the io thread alone touches (and frees) it.
      asio::post(io_, [conn = std::move(conn), guest = std::move(guest)]() mutable {
        conn->OnConnected(std::move(guest));
      });
    });
  }
  asio::post(io_, [this] {
    if (!stopping_) {
      AcceptReady();
    }
  });
}

absl::StatusOr<std::unique_ptr<PortForwarder>> PortForwarder::Start(const std::string& address,
                                                                    uint16_t host_port,
                                                                    Connector connector) {
  const std::string addr = address.empty() ? "127.0.0.1" : address;
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(host_port);
  if (::inet_pton(AF_INET, addr.c_str(), &sin.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("host address '", addr, "' is not an IPv4 address (e.g. 127.0.0.1)"));
  }
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    return base::ErrnoToStatus(errno, "socket");
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) {
    if (errno == EADDRINUSE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "host port ", addr, ":", host_port,
          " is already in use; pick another with -p HOST:GUEST or use 0 for an ephemeral one"));
    }
    return base::ErrnoToStatus(errno, absl::StrCat("bind ", addr, ":", host_port));
  }
  // The kernel's maximum backlog: many clients may connect at once (issue #9).
  if (::listen(fd.get(), SOMAXCONN) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("listen on ", addr, ":", host_port));
  }
  socklen_t len = sizeof(sin);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  auto impl = std::make_unique<Impl>(std::move(fd), std::move(connector));
  if (impl->assign_error()) {
    return base::ErrnoToStatus(impl->assign_error().value(),
                               absl::StrCat("listen on ", addr, ":", ntohs(sin.sin_port)));
  }
  impl->Run();
  return std::unique_ptr<PortForwarder>(
      new PortForwarder(addr, ntohs(sin.sin_port), std::move(impl)));
}

PortForwarder::PortForwarder(std::string address, uint16_t port, std::unique_ptr<Impl> impl)
    : address_(std::move(address)), port_(port), impl_(std::move(impl)) {}

PortForwarder::~PortForwarder() = default;

}  // namespace supermachine::vm
