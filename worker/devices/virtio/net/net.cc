// File: net.cc
// virtio-net queue handling: filtered guest tx to the backend, backend frames and our replies
// into guest rx buffers.
#include "worker/devices/virtio/net/net.h"

#include <sys/epoll.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::devices::virtio::net {

namespace n = ::supermachine::net;

absl::StatusOr<std::unique_ptr<VirtioNet>> VirtioNet::Create(NetConfig config,
                                                             n::PasstBackend backend) {
  if (backend.stream == nullptr) {
    return absl::InvalidArgumentError("virtio-net: no backend stream");
  }
  base::UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) {
    return base::ErrnoToStatus(errno, "virtio-net: epoll_create1");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, backend.stream->fd(), &ev) != 0) {
    return base::ErrnoToStatus(errno, "virtio-net: adding the backend socket to epoll");
  }
  return std::unique_ptr<VirtioNet>(
      new VirtioNet(std::move(config), std::move(backend), std::move(ep)));
}

VirtioNet::VirtioNet(NetConfig config, n::PasstBackend backend, base::UniqueFd epoll)
    : config_(std::move(config)),
      backend_(std::move(backend)),
      epoll_(std::move(epoll)),
      interest_(EPOLLIN) {
  tx_frame_.reserve(n::FramedStream::kMaxFrame);
}

std::string VirtioNet::name() const { return "virtio-net " + n::ToString(config_.mac); }

void VirtioNet::ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const {
  uint8_t config[8] = {};
  std::memcpy(config, config_.mac.data(), 6);
  const uint16_t status = link_up_ && !backend_.stream->closed() ? kStatusLinkUp : 0;
  config[6] = static_cast<uint8_t>(status);
  config[7] = static_cast<uint8_t>(status >> 8);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = offset + i < sizeof(config) ? config[offset + i] : 0;
  }
}

void VirtioNet::Activate(uint64_t /*acked*/) { activated_ = true; }

void VirtioNet::Reset() {
  activated_ = false;
  rx_stalled_ = false;
  replies_.clear();
  UpdateInterest();
}

std::string VirtioNet::StatsLine() const {
  return absl::StrCat("rx_packets=", stats_.rx_packets.load(), " rx_bytes=",
                      stats_.rx_bytes.load(), " tx_packets=", stats_.tx_packets.load(),
                      " tx_bytes=", stats_.tx_bytes.load(), " dropped_policy=",
                      stats_.dropped_policy.load(), " dropped_malformed=",
                      stats_.dropped_malformed.load(), " dropped_rx=", stats_.dropped_rx.load(),
                      " reset_stale=", stats_.reset_stale.load());
}

absl::StatusOr<bool> VirtioNet::ProcessQueues(uint32_t index, absl::Span<Queue> queues,
                                              const memory::GuestMemory& mem) {
  if (index == kRxQueue) {
    rx_stalled_ = false;  // New buffers: the waiting frame may fit now.
  }
  absl::StatusOr<bool> used = Pump(queues, mem);
  UpdateInterest();
  return used;
}

absl::StatusOr<bool> VirtioNet::ProcessHostEvents(absl::Span<Queue> queues,
                                                  const memory::GuestMemory& mem) {
  backend_.stream->Flush();
  absl::StatusOr<bool> used = Pump(queues, mem);
  if (!activated_) {
    DiscardHostFrames();  // No driver: what passt sends has nowhere to go.
  }
  UpdateInterest();
  return used;
}

void VirtioNet::DiscardHostFrames() {
  // Bounded: one buffer's worth per event, the rest on the next (level-triggered) round.
  for (int i = 0; i < 64; ++i) {
    if (!backend_.stream->NextFrame().has_value()) {
      break;
    }
    backend_.stream->PopFrame();
    stats_.dropped_rx.fetch_add(1, std::memory_order_relaxed);
  }
}

void VirtioNet::UpdateInterest() {
  n::FramedStream& s = *backend_.stream;
  if (s.closed()) {
    if (registered_) {
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, s.fd(), nullptr);
      registered_ = false;
      if (!closed_logged_) {
        closed_logged_ = true;
        std::fprintf(stderr, "supermachine-worker: %s: the network backend (passt) went away; "
                     "the guest's link is down\n", name().c_str());
      }
    }
    return;
  }
  uint32_t want = rx_stalled_ ? 0u : static_cast<uint32_t>(EPOLLIN);
  if (s.has_output()) {
    want |= EPOLLOUT;
  }
  if (want != interest_) {
    epoll_event ev{};
    ev.events = want;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, s.fd(), &ev) == 0) {
      interest_ = want;
    }
  }
}

absl::StatusOr<bool> VirtioNet::Pump(absl::Span<Queue> queues, const memory::GuestMemory& mem) {
  if (!activated_ || queues.size() <= kTxQueue || !queues[kRxQueue].state().ready ||
      !queues[kTxQueue].state().ready) {
    return false;
  }
  SM_ASSIGN_OR_RETURN(bool tx_used, DrainTx(queues[kTxQueue], mem));
  backend_.stream->Flush();
  SM_ASSIGN_OR_RETURN(bool rx_used, FillRx(queues[kRxQueue], mem));
  return tx_used || rx_used;
}

absl::StatusOr<bool> VirtioNet::DrainTx(Queue& tx, const memory::GuestMemory& mem) {
  bool used = false;
  n::FramedStream& s = *backend_.stream;
  while (true) {
    if (!s.can_send()) {
      s.Flush();
      if (!s.can_send()) {
        break;  // Backpressure: EPOLLOUT brings us back when passt has read.
      }
    }
    SM_ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, tx.Pop(mem));
    if (!chain.has_value()) {
      break;
    }
    bool ok = chain->error.ok();
    uint64_t readable = 0;
    for (const Descriptor& d : chain->descriptors) {
      if (!d.write_only) {
        readable += d.len;
      }
    }
    ok = ok && readable >= kNetHeaderSize + n::kEthHeaderLen &&
         readable - kNetHeaderSize <= n::FramedStream::kMaxFrame;
    if (ok) {
      tx_frame_.resize(readable - kNetHeaderSize);
      absl::StatusOr<uint64_t> got =
          ReadFromChain(mem, *chain, kNetHeaderSize, absl::MakeSpan(tx_frame_));
      ok = got.ok() && *got == tx_frame_.size();
    }
    // The frame is copied out: the buffer goes back at once.
    SM_RETURN_IF_ERROR(tx.PushUsed(mem, chain->head, 0));
    used = true;
    if (!ok) {
      stats_.dropped_malformed.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    n::FilterVerdict v = n::FilterGuestFrame(config_.filter, tx_frame_);
    if (v.malformed) {
      stats_.dropped_malformed.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (!v.pass) {
      stats_.dropped_policy.fetch_add(1, std::memory_order_relaxed);
      if (!v.reply.empty() && replies_.size() < kMaxPendingReplies) {
        replies_.push_back(std::move(v.reply));
      }
      continue;
    }
    if (v.info.has_value() && StaleTcp(*v.info)) {
      stats_.reset_stale.fetch_add(1, std::memory_order_relaxed);
      if (replies_.size() < kMaxPendingReplies) {
        replies_.push_back(n::BuildTcpRst(tx_frame_, *v.info));
      }
      continue;
    }
    if (s.Send(tx_frame_)) {
      stats_.tx_packets.fetch_add(1, std::memory_order_relaxed);
      stats_.tx_bytes.fetch_add(tx_frame_.size(), std::memory_order_relaxed);
    }
    // Send fails only when passt is gone (can_send was checked): the frame is lost like on a
    // cable that was pulled.
  }
  return used;
}

bool VirtioNet::StaleTcp(const n::FrameInfo& info) {
  if (!info.ip || info.proto != n::kProtoTcp || info.fragment || info.l4_offset == 0 ||
      !track_flows_) {
    return false;
  }
  std::string key(reinterpret_cast<const char*>(info.src.b.data()), 16);
  key.append(reinterpret_cast<const char*>(info.dst.b.data()), 16);
  key.push_back(static_cast<char>(info.src_port >> 8));
  key.push_back(static_cast<char>(info.src_port));
  key.push_back(static_cast<char>(info.dst_port >> 8));
  key.push_back(static_cast<char>(info.dst_port));
  constexpr uint8_t kSyn = 0x02, kRst = 0x04, kAck = 0x10;
  if ((info.tcp_flags & kSyn) && !(info.tcp_flags & kAck)) {
    if (flows_.size() >= kMaxFlows) {
      track_flows_ = false;  // Give up rather than forget a live connection.
      flows_.clear();
      return false;
    }
    flows_.insert(std::move(key));
    return false;
  }
  if (info.tcp_flags & kRst) {
    flows_.erase(key);
    return false;  // A RST needs no answer; passing it on is harmless.
  }
  return !flows_.contains(key);
}

absl::StatusOr<VirtioNet::RxResult> VirtioNet::DeliverRx(Queue& rx,
                                                        const memory::GuestMemory& mem,
                                                        absl::Span<const uint8_t> frame,
                                                        bool& used) {
  SM_ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, rx.Pop(mem));
  if (!chain.has_value()) {
    return RxResult::kNoBuffer;
  }
  uint64_t room = 0;
  const bool ok = chain->error.ok();
  for (const Descriptor& d : chain->descriptors) {
    if (d.write_only) {
      room += d.len;
    }
  }
  if (!ok || room < kNetHeaderSize + frame.size()) {
    // Too small for this frame (or broken): drop the frame. A buffer that can hold a minimal
    // frame is kept for the next one (un-popped: the driver cannot have reused its slot);
    // one that cannot goes back empty.
    stats_.dropped_rx.fetch_add(1, std::memory_order_relaxed);
    if (!ok || room < kNetHeaderSize + 60) {
      SM_RETURN_IF_ERROR(rx.PushUsed(mem, chain->head, 0));
      used = true;
    } else {
      rx.state().next_avail = static_cast<uint16_t>(rx.state().next_avail - 1);
    }
    return RxResult::kDropped;
  }
  uint8_t hdr[kNetHeaderSize] = {};
  hdr[10] = 1;  // num_buffers = 1 (le16): always one buffer without MRG_RXBUF.
  const uint8_t* parts[2] = {hdr, frame.data()};
  const size_t lens[2] = {kNetHeaderSize, frame.size()};
  size_t part = 0;
  size_t part_off = 0;
  for (const Descriptor& d : chain->descriptors) {
    if (!d.write_only) {
      continue;
    }
    uint64_t d_off = 0;
    while (d_off < d.len && part < 2) {
      const size_t n = std::min<uint64_t>(d.len - d_off, lens[part] - part_off);
      SM_ASSIGN_OR_RETURN(uint8_t * dst, mem.HostSlice(d.addr + d_off, n));
      std::memcpy(dst, parts[part] + part_off, n);
      d_off += n;
      part_off += n;
      if (part_off == lens[part]) {
        ++part;
        part_off = 0;
      }
    }
    if (part == 2) {
      break;
    }
  }
  const uint32_t len = static_cast<uint32_t>(kNetHeaderSize + frame.size());
  SM_RETURN_IF_ERROR(rx.PushUsed(mem, chain->head, len));
  used = true;
  stats_.rx_packets.fetch_add(1, std::memory_order_relaxed);
  stats_.rx_bytes.fetch_add(frame.size(), std::memory_order_relaxed);
  return RxResult::kDelivered;
}

absl::StatusOr<bool> VirtioNet::FillRx(Queue& rx, const memory::GuestMemory& mem) {
  bool used = false;
  rx_stalled_ = false;
  while (!replies_.empty()) {
    SM_ASSIGN_OR_RETURN(RxResult r, DeliverRx(rx, mem, replies_.front(), used));
    if (r == RxResult::kNoBuffer) {
      rx_stalled_ = true;
      return used;
    }
    replies_.pop_front();
  }
  n::FramedStream& s = *backend_.stream;
  while (true) {
    std::optional<absl::Span<const uint8_t>> frame = s.NextFrame();
    if (!frame.has_value()) {
      break;
    }
    SM_ASSIGN_OR_RETURN(RxResult r, DeliverRx(rx, mem, *frame, used));
    if (r == RxResult::kNoBuffer) {
      rx_stalled_ = true;  // The frame stays buffered until the guest posts buffers.
      break;
    }
    s.PopFrame();
  }
  return used;
}

}  // namespace supermachine::devices::virtio::net
