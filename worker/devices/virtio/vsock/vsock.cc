// File: vsock.cc
// virtio-vsock queue handling: guest tx packets in, rx packets out, transport reset events.
#include "worker/devices/virtio/vsock/vsock.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::devices::virtio::vsock {

absl::StatusOr<std::unique_ptr<Vsock>> Vsock::Create(const VsockConfig& config) {
  if (config.guest_cid < kMinGuestCid || config.guest_cid >= 0xffffffffu) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vsock guest CID ", config.guest_cid, ": must be in 3..4294967294 (0-2 are reserved)"));
  }
  SM_ASSIGN_OR_RETURN(std::unique_ptr<Muxer> muxer,
                      Muxer::Create({.uds_path = config.uds_path,
                                     .guest_cid = config.guest_cid,
                                     .connect_timeout = config.connect_timeout,
                                     .first_host_port = config.first_host_port}));
  return std::unique_ptr<Vsock>(new Vsock(config, std::move(muxer)));
}

void Vsock::ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const {
  uint8_t config[8];
  for (size_t i = 0; i < 8; ++i) {
    config[i] = static_cast<uint8_t>(config_.guest_cid >> (8 * i));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = offset + i < sizeof(config) ? config[offset + i] : 0;
  }
}

void Vsock::Activate(uint64_t /*acked*/) {
  activated_ = true;
  muxer_->set_guest_ready(true);
}

void Vsock::Reset() {
  activated_ = false;
  tx_stalled_ = false;
  muxer_->set_guest_ready(false);
  muxer_->DropAllConnections();
}

absl::StatusOr<bool> Vsock::ProcessQueues(uint32_t index, absl::Span<Queue> queues,
                                          const memory::GuestMemory& mem) {
  if (index == kEventQueue) {
    return false;  // Event buffers wait until we have an event (ResetTransport).
  }
  return Pump(queues, mem);
}

absl::StatusOr<bool> Vsock::ProcessHostEvents(absl::Span<Queue> queues,
                                              const memory::GuestMemory& mem) {
  // Always drain the host side, even before the driver is up: the epoll set is
  // level-triggered and would keep the event loop spinning otherwise.
  muxer_->ProcessHostEvents();
  return Pump(queues, mem);
}

absl::StatusOr<bool> Vsock::Pump(absl::Span<Queue> queues, const memory::GuestMemory& mem) {
  if (!activated_ || queues.size() <= kEventQueue || !queues[kRxQueue].state().ready ||
      !queues[kTxQueue].state().ready) {
    return false;
  }
  bool used = false;
  while (true) {
    SM_ASSIGN_OR_RETURN(bool tx_used, DrainTx(queues[kTxQueue], mem));
    SM_ASSIGN_OR_RETURN(bool rx_used, FillRx(queues[kRxQueue], mem));
    used = used || tx_used || rx_used;
    // A stalled tx can go on once rx took some of the backed-up replies.
    if (!(tx_stalled_ && rx_used)) {
      break;
    }
  }
  return used;
}

absl::StatusOr<bool> Vsock::DrainTx(Queue& tx, const memory::GuestMemory& mem) {
  bool used = false;
  tx_stalled_ = false;
  while (true) {
    if (!muxer_->CanTakeGuestPacket()) {
      tx_stalled_ = true;
      break;
    }
    SM_ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, tx.Pop(mem));
    if (!chain.has_value()) {
      break;
    }
    // Every tx buffer is returned at once with length 0: the device writes nothing into it.
    // The packet is copied out first, so the guest may reuse the buffer as soon as it sees it.
    Header h;
    bool well_formed = false;
    bool have_header = false;
    if (chain->error.ok()) {
      uint8_t hdr[kHeaderSize];
      absl::StatusOr<uint64_t> got = ReadFromChain(mem, *chain, 0, absl::MakeSpan(hdr));
      if (got.ok() && *got == kHeaderSize) {
        have_header = true;
        h = DecodeHeader(hdr);
        if (h.len <= kMaxPayload) {
          payload_.resize(h.len);
          got = ReadFromChain(mem, *chain, kHeaderSize, absl::MakeSpan(payload_));
          well_formed = got.ok() && *got == h.len;
        }
      }
    }
    SM_RETURN_IF_ERROR(tx.PushUsed(mem, chain->head, 0));
    used = true;
    if (well_formed) {
      muxer_->HandleGuestPacket(h, payload_);
    } else if (have_header) {
      muxer_->HandleMalformedPacket(h);
    }
    // Without even a header there is no connection to blame: the buffer is just dropped.
  }
  return used;
}

absl::StatusOr<bool> Vsock::FillRx(Queue& rx, const memory::GuestMemory& mem) {
  bool used = false;
  while (muxer_->HasRx()) {
    SM_ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, rx.Pop(mem));
    if (!chain.has_value()) {
      break;  // The guest gives more buffers with a notification, which brings us back.
    }
    // Lay the buffer out as iovecs over guest memory: header first, payload after it.
    rx_iov_.clear();
    uint64_t total = 0;
    bool ok = chain->error.ok();
    for (const Descriptor& d : chain->descriptors) {
      if (!ok || !d.write_only || d.len == 0) {
        continue;
      }
      absl::StatusOr<uint8_t*> p = mem.HostSlice(d.addr, d.len);
      if (!p.ok()) {
        ok = false;
        break;
      }
      rx_iov_.push_back(iovec{.iov_base = *p, .iov_len = d.len});
      total += d.len;
    }
    if (!ok || total < kHeaderSize) {
      SM_RETURN_IF_ERROR(rx.PushUsed(mem, chain->head, 0));  // Unusable buffer.
      used = true;
      continue;
    }
    // Split off the header bytes (they may span descriptors).
    size_t first_payload = 0;
    size_t skip = kHeaderSize;
    while (skip > 0) {
      if (rx_iov_[first_payload].iov_len <= skip) {
        skip -= rx_iov_[first_payload].iov_len;
        ++first_payload;
      } else {
        break;
      }
    }
    std::vector<iovec>& header_iov = rx_header_iov_;
    std::vector<iovec>& payload_iov = rx_payload_iov_;
    header_iov.assign(rx_iov_.begin(), rx_iov_.begin() + static_cast<long>(first_payload));
    payload_iov.assign(rx_iov_.begin() + static_cast<long>(first_payload), rx_iov_.end());
    if (skip > 0) {
      header_iov.push_back(iovec{.iov_base = payload_iov[0].iov_base, .iov_len = skip});
      payload_iov[0].iov_base = static_cast<uint8_t*>(payload_iov[0].iov_base) + skip;
      payload_iov[0].iov_len -= skip;
    }
    std::optional<Header> h = muxer_->ProduceRx(payload_iov);
    if (!h.has_value()) {
      if (total == kHeaderSize) {
        // Only data is left and this buffer has no room for any: give it back empty rather
        // than hold it and block every later buffer behind it.
        SM_RETURN_IF_ERROR(rx.PushUsed(mem, chain->head, 0));
        used = true;
        continue;
      }
      // Nothing after all (a socket that looked readable was not): un-pop the buffer, so the
      // next Pop returns it again. The driver cannot have reused its avail slot, since the
      // buffer is still outstanding. Nothing is held across calls, so the queue state alone
      // describes the device (snapshots need nothing else).
      rx.state().next_avail = static_cast<uint16_t>(rx.state().next_avail - 1);
      break;
    }
    const std::array<uint8_t, kHeaderSize> bytes = EncodeHeader(*h);
    size_t off = 0;
    for (const iovec& v : header_iov) {
      std::memcpy(v.iov_base, bytes.data() + off, v.iov_len);
      off += v.iov_len;
    }
    SM_RETURN_IF_ERROR(rx.PushUsed(mem, chain->head, static_cast<uint32_t>(kHeaderSize + h->len)));
    used = true;
  }
  return used;
}

absl::StatusOr<bool> Vsock::ResetTransport(absl::Span<Queue> queues,
                                           const memory::GuestMemory& mem) {
  muxer_->DropAllConnections();
  if (!activated_ || queues.size() <= kEventQueue || !queues[kEventQueue].state().ready) {
    return false;
  }
  Queue& ev = queues[kEventQueue];
  SM_ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, ev.Pop(mem));
  if (!chain.has_value()) {
    return false;
  }
  uint32_t written = 0;
  if (chain->error.ok()) {
    for (const Descriptor& d : chain->descriptors) {
      if (d.write_only && d.len >= kEventSize) {
        SM_RETURN_IF_ERROR(mem.WriteObj<uint32_t>(d.addr, kEventTransportReset));
        written = kEventSize;
        break;
      }
    }
  }
  SM_RETURN_IF_ERROR(ev.PushUsed(mem, chain->head, written));
  return true;
}

}  // namespace supermachine::devices::virtio::vsock
