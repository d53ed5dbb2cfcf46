// File: connection.cc
// vsock connection state machine and credit accounting.
#include "worker/devices/virtio/vsock/connection.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace supermachine::devices::virtio::vsock {
namespace {

// At most this many rx descriptors are filled per packet; Linux posts two (header, 4 KiB).
constexpr size_t kMaxIov = 16;

}  // namespace

std::unique_ptr<Connection> Connection::HostInitiated(base::UniqueFd host, ConnKey key,
                                                      uint64_t guest_cid) {
  std::unique_ptr<Connection> c(
      new Connection(std::move(host), key, guest_cid, State::kConnecting));
  c->pending_request_ = true;
  // The client may have written data right after its CONNECT line; we do not know, so look.
  c->host_readable_ = true;
  return c;
}

std::unique_ptr<Connection> Connection::GuestInitiated(base::UniqueFd host, const Header& req,
                                                       uint64_t guest_cid) {
  std::unique_ptr<Connection> c(
      new Connection(std::move(host), ConnKey{.local_port = req.dst_port, .peer_port = req.src_port},
                     guest_cid, State::kEstablished));
  c->pending_response_ = true;
  c->host_readable_ = true;
  c->peer_buf_alloc_ = req.buf_alloc;
  c->peer_fwd_cnt_ = req.fwd_cnt;
  return c;
}

uint32_t Connection::buffered() const {
  return static_cast<uint32_t>(tx_buf_.size() - tx_off_ - uncounted_);
}

uint32_t Connection::PeerCredit() const {
  // Wrapping arithmetic as on the wire; a guest that reports more consumed than we sent (or a
  // buffer smaller than what is in flight) simply gets nothing more.
  const uint32_t in_flight = tx_cnt_ - peer_fwd_cnt_;
  return in_flight >= peer_buf_alloc_ ? 0 : peer_buf_alloc_ - in_flight;
}

Header Connection::MakeHeader(Op op) {
  last_fwd_cnt_sent_ = fwd_cnt_;
  return Header{.src_cid = kHostCid,
                .dst_cid = guest_cid_,
                .src_port = key_.local_port,
                .dst_port = key_.peer_port,
                .len = 0,
                .type = kTypeStream,
                .op = static_cast<uint16_t>(op),
                .flags = 0,
                .buf_alloc = kBufAlloc,
                .fwd_cnt = fwd_cnt_};
}

void Connection::Abort() {
  if (state_ == State::kClosed) {
    return;
  }
  aborted_ = true;
  pending_rst_ = true;
  pending_request_ = pending_response_ = pending_credit_update_ = false;
  pending_shutdown_ = 0;
  tx_buf_.clear();
  tx_off_ = uncounted_ = 0;
  // The host client learns at once (EOF/EPIPE), even if the RST waits for an rx buffer. The
  // descriptor itself stays ours until the owner drops the connection, so its number cannot
  // be reused under the owner's fd map.
  shutdown(host_.get(), SHUT_RDWR);
}

void Connection::Consume(size_t n) {
  const size_t own = std::min(n, uncounted_);
  uncounted_ -= own;
  fwd_cnt_ += static_cast<uint32_t>(n - own);
  tx_off_ += n;
  if (tx_off_ == tx_buf_.size()) {
    tx_buf_.clear();
    tx_off_ = 0;
  } else if (tx_off_ > tx_buf_.size() / 2) {
    tx_buf_.erase(0, tx_off_);
    tx_off_ = 0;
  }
}

void Connection::FlushTx() {
  while (!aborted_ && tx_off_ < tx_buf_.size()) {
    const ssize_t n = send(host_.get(), tx_buf_.data() + tx_off_, tx_buf_.size() - tx_off_,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;  // EPOLLOUT brings us back.
      }
      Abort();  // EPIPE/ECONNRESET: the host side is gone.
      return;
    }
    Consume(static_cast<size_t>(n));
  }
  AfterTxProgress();
}

void Connection::AfterTxProgress() {
  if (aborted_ || state_ != State::kEstablished) {
    return;
  }
  const bool drained = tx_off_ == tx_buf_.size();
  if (drained && (peer_shutdown_ & kShutdownSend) && !host_wr_shut_) {
    // The guest will send no more: pass the half-close on so the host client sees EOF.
    shutdown(host_.get(), SHUT_WR);
    host_wr_shut_ = true;
  }
  if (drained && peer_shutdown_ == kShutdownBoth) {
    // A full shutdown from the guest is answered with RST once its data is delivered (Linux
    // waits for exactly that before it forgets the socket).
    pending_rst_ = true;
    pending_shutdown_ = 0;
    pending_credit_update_ = false;
    return;
  }
  if (fwd_cnt_ - last_fwd_cnt_sent_ >= kCreditUpdateThreshold) {
    pending_credit_update_ = true;
  }
}

void Connection::OnGuestPacket(const Header& h, absl::Span<const uint8_t> payload) {
  if (state_ == State::kClosed) {
    return;
  }
  peer_buf_alloc_ = h.buf_alloc;
  peer_fwd_cnt_ = h.fwd_cnt;
  const Op op = h.op_code();
  if (op == Op::kRst) {
    // The guest forgot the connection: nothing to answer, the host side just closes.
    state_ = State::kClosed;
    return;
  }
  if (pending_rst_) {
    return;  // Already aborting; the RST answers everything.
  }
  if (state_ == State::kConnecting) {
    if (op == Op::kResponse) {
      state_ = State::kEstablished;
      std::string ok = absl::StrCat("OK ", key_.local_port, "\n");
      tx_buf_.insert(tx_off_, ok);
      uncounted_ += ok.size();
      FlushTx();
    } else {
      Abort();
    }
    return;
  }
  switch (op) {
    case Op::kRw: {
      // Data after the guest said it would send no more, after we shut the host side, or
      // beyond the credit we gave: a broken peer; reset rather than buffer without bound.
      if ((peer_shutdown_ & kShutdownSend) || host_wr_shut_ || aborted_ ||
          payload.size() > OurFreeSpace()) {
        Abort();
        return;
      }
      if (tx_off_ == tx_buf_.size()) {
        // Nothing queued: write straight through and keep only what the socket refuses.
        size_t done = 0;
        while (done < payload.size()) {
          const ssize_t n = send(host_.get(), payload.data() + done, payload.size() - done,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
          if (n < 0) {
            if (errno == EINTR) {
              continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
              break;
            }
            Abort();
            return;
          }
          done += static_cast<size_t>(n);
          fwd_cnt_ += static_cast<uint32_t>(n);
        }
        tx_buf_.append(reinterpret_cast<const char*>(payload.data()) + done,
                       payload.size() - done);
        AfterTxProgress();
      } else {
        tx_buf_.append(reinterpret_cast<const char*>(payload.data()), payload.size());
        FlushTx();
      }
      return;
    }
    case Op::kShutdown:
      peer_shutdown_ |= h.flags & kShutdownBoth;
      AfterTxProgress();
      return;
    case Op::kCreditUpdate:
      return;  // The credit fields were all it carried.
    case Op::kCreditRequest:
      pending_credit_update_ = true;
      return;
    default:
      // REQUEST/RESPONSE on an established connection, or an unknown op.
      Abort();
      return;
  }
}

void Connection::OnHostEvents(uint32_t events) {
  if (state_ == State::kClosed || aborted_) {
    return;
  }
  if (events & (EPOLLHUP | EPOLLERR)) {
    host_hup_ = true;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    host_readable_ = true;  // Data, EOF or an error: the next read says which.
  }
  if (events & EPOLLOUT) {
    FlushTx();
  }
}

bool Connection::CanSendData() const {
  return state_ == State::kEstablished && !aborted_ && host_readable_ && !host_eof_ &&
         !(peer_shutdown_ & kShutdownRcv) && PeerCredit() > 0;
}

bool Connection::WantsRx() const {
  if (state_ == State::kClosed) {
    return false;
  }
  return pending_rst_ || pending_request_ || pending_response_ || pending_shutdown_ != 0 ||
         pending_credit_update_ || CanSendData();
}

std::optional<Header> Connection::ProduceRx(absl::Span<const iovec> space) {
  if (state_ == State::kClosed) {
    return std::nullopt;
  }
  if (pending_rst_) {
    state_ = State::kClosed;
    return MakeHeader(Op::kRst);
  }
  if (pending_request_) {
    pending_request_ = false;
    return MakeHeader(Op::kRequest);
  }
  if (pending_response_) {
    pending_response_ = false;
    return MakeHeader(Op::kResponse);
  }
  if (CanSendData()) {
    size_t limit = std::min<size_t>(PeerCredit(), kMaxPayload);
    iovec iov[kMaxIov];
    int iovcnt = 0;
    for (const iovec& v : space) {
      if (limit == 0 || iovcnt == static_cast<int>(kMaxIov)) {
        break;
      }
      const size_t take = std::min(limit, v.iov_len);
      if (take == 0) {
        continue;
      }
      iov[iovcnt++] = iovec{.iov_base = v.iov_base, .iov_len = take};
      limit -= take;
    }
    if (iovcnt > 0) {
      ssize_t n;
      do {
        n = readv(host_.get(), iov, iovcnt);
      } while (n < 0 && errno == EINTR);
      if (n > 0) {
        tx_cnt_ += static_cast<uint32_t>(n);
        pending_credit_update_ = false;  // The RW header carries fwd_cnt.
        Header h = MakeHeader(Op::kRw);
        h.len = static_cast<uint32_t>(n);
        return h;
      }
      if (n == 0) {
        // EOF: the host client will send no more; if it closed both ways, it takes no more
        // either (Linux then resets the connection once its reader has drained it).
        host_eof_ = true;
        host_readable_ = false;
        pending_shutdown_ |= kShutdownSend | (host_hup_ ? kShutdownRcv : 0);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        host_readable_ = false;  // Until the next edge.
      } else {
        Abort();
        state_ = State::kClosed;
        return MakeHeader(Op::kRst);
      }
    }
  }
  if (pending_shutdown_ != 0) {
    Header h = MakeHeader(Op::kShutdown);
    h.flags = pending_shutdown_;
    pending_shutdown_ = 0;
    return h;
  }
  if (pending_credit_update_) {
    pending_credit_update_ = false;
    return MakeHeader(Op::kCreditUpdate);
  }
  return std::nullopt;
}

}  // namespace supermachine::devices::virtio::vsock
