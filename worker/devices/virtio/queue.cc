// File: queue.cc
// Split virtqueue walking with bounds on everything the guest controls.
#include "worker/devices/virtio/queue.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/base/status_macros.h"

namespace supermachine::devices::virtio {
namespace {

constexpr uint16_t kDescFlagNext = 1;
constexpr uint16_t kDescFlagWrite = 2;
constexpr uint16_t kDescFlagIndirect = 4;

struct RawDescriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(RawDescriptor) == 16);

}  // namespace

absl::Status Queue::Validate(const memory::GuestMemory& mem) const {
  const uint64_t n = state_.size;
  if (n == 0 || n > state_.max_size || (n & (n - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue size ", n, " must be a power of two in 1..", state_.max_size));
  }
  // Sizes per virtio 1.x §2.7: descriptor table 16n, avail 6+2n, used 6+8n.
  if (!mem.IsValidRange(state_.desc_table, 16 * n) ||
      !mem.IsValidRange(state_.avail_ring, 6 + 2 * n) ||
      !mem.IsValidRange(state_.used_ring, 6 + 8 * n)) {
    return absl::InvalidArgumentError("queue rings are not inside guest memory");
  }
  if (state_.desc_table % 16 != 0 || state_.avail_ring % 2 != 0 || state_.used_ring % 4 != 0) {
    return absl::InvalidArgumentError("queue rings are misaligned");
  }
  return absl::OkStatus();
}

absl::StatusOr<DescriptorChain> Queue::WalkChain(const memory::GuestMemory& mem,
                                                 uint16_t head,
                                                 uint64_t max_chain_bytes) const {
  DescriptorChain chain;
  chain.head = head;
  uint16_t index = head;
  uint64_t total = 0;
  // A chain can use each descriptor at most once, so more than `size` steps means a loop.
  for (uint32_t steps = 0;; ++steps) {
    if (steps >= state_.size) {
      return absl::InvalidArgumentError("descriptor chain loops or exceeds the queue size");
    }
    if (index >= state_.size) {
      return absl::InvalidArgumentError(
          absl::StrCat("descriptor index ", index, " out of range (queue size ", state_.size, ")"));
    }
    SM_ASSIGN_OR_RETURN(RawDescriptor raw,
                        mem.ReadObj<RawDescriptor>(state_.desc_table + 16ull * index));
    if (raw.flags & kDescFlagIndirect) {
      // We never offer VIRTIO_F_INDIRECT_DESC, so a driver using it is broken or hostile.
      return absl::InvalidArgumentError("indirect descriptor without the negotiated feature");
    }
    if (!mem.IsValidRange(raw.addr, raw.len)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "descriptor %u: buffer [0x%x, +0x%x) outside guest memory", index, raw.addr, raw.len));
    }
    total += raw.len;
    if (total > max_chain_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("descriptor chain longer than ", max_chain_bytes, " bytes"));
    }
    chain.descriptors.push_back(
        {.addr = raw.addr, .len = raw.len, .write_only = (raw.flags & kDescFlagWrite) != 0});
    if (!(raw.flags & kDescFlagNext)) {
      break;
    }
    index = raw.next;
  }
  return chain;
}

absl::StatusOr<std::optional<DescriptorChain>> Queue::Pop(const memory::GuestMemory& mem,
                                                          uint64_t max_chain_bytes) {
  SM_ASSIGN_OR_RETURN(uint8_t * avail_idx_ptr, mem.HostSlice(state_.avail_ring + 2, 2));
  // Acquire: the ring entries the driver wrote before bumping idx must be visible to us.
  const uint16_t avail_idx =
      std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(avail_idx_ptr))
          .load(std::memory_order_acquire);
  if (avail_idx == state_.next_avail) {
    return std::optional<DescriptorChain>();
  }
  // A driver can claim at most `size` outstanding buffers; more is corrupt.
  if (static_cast<uint16_t>(avail_idx - state_.next_avail) > state_.size) {
    return absl::FailedPreconditionError("avail index moved past the queue size");
  }
  const uint64_t slot = state_.avail_ring + 4 + 2ull * (state_.next_avail % state_.size);
  SM_ASSIGN_OR_RETURN(uint16_t head, mem.ReadObj<uint16_t>(slot));
  state_.next_avail++;
  absl::StatusOr<DescriptorChain> chain = WalkChain(mem, head, max_chain_bytes);
  if (!chain.ok()) {
    DescriptorChain bad;
    bad.head = head;
    bad.error = chain.status();
    return std::optional<DescriptorChain>(std::move(bad));
  }
  return std::optional<DescriptorChain>(*std::move(chain));
}

absl::Status Queue::PushUsed(const memory::GuestMemory& mem, uint16_t head, uint32_t len) {
  const uint64_t elem = state_.used_ring + 4 + 8ull * (state_.next_used % state_.size);
  SM_RETURN_IF_ERROR(mem.WriteObj<uint32_t>(elem, head));
  SM_RETURN_IF_ERROR(mem.WriteObj<uint32_t>(elem + 4, len));
  state_.next_used++;
  SM_ASSIGN_OR_RETURN(uint8_t * used_idx_ptr, mem.HostSlice(state_.used_ring + 2, 2));
  // Release: the element must be visible before the driver sees the new idx.
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used_idx_ptr))
      .store(state_.next_used, std::memory_order_release);
  return absl::OkStatus();
}

}  // namespace supermachine::devices::virtio
