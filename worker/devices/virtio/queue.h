// File: queue.h
// A split virtqueue (virtio 1.x §2.7): the driver-configured addresses and size as a plain
// struct, and the device side — pop available chains, walk descriptors, push used entries.
// Everything in the rings comes from the hostile guest: a chain that loops, leaves guest
// memory, is longer than the queue or carries more than kMaxChainBytes is rejected (the request
// fails), never trusted or asserted.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/memory/guest_memory.h"

namespace supermachine::devices::virtio {

// Per-queue state the driver programs through the transport; plain data for snapshots.
struct QueueState {
  uint16_t max_size = 256;
  uint16_t size = 256;
  bool ready = false;
  uint64_t desc_table = 0;
  uint64_t avail_ring = 0;
  uint64_t used_ring = 0;
  uint16_t next_avail = 0;  // Our position in the avail ring.
  uint16_t next_used = 0;   // Our position in the used ring.
};

struct Descriptor {
  uint64_t addr = 0;
  uint32_t len = 0;
  bool write_only = false;  // Device writes into it (VIRTQ_DESC_F_WRITE).
};

struct DescriptorChain {
  uint16_t head = 0;
  std::vector<Descriptor> descriptors;
  // Not OK when the chain is malformed (loop, out of range, too long, indirect): the device
  // must complete it with a used length of 0 and must not touch its buffers.
  absl::Status error;
};

class Queue {
 public:
  // Upper bound on the bytes one chain may describe: bigger than any block request Linux
  // sends (max_sectors 2560 × 512 = 1.25 MiB by default), small enough that a request cannot
  // make a device allocate or touch an absurd amount at once.
  static constexpr uint64_t kMaxChainBytes = 64ull << 20;

  Queue() = default;
  explicit Queue(const QueueState& state) : state_(state) {}

  QueueState& state() { return state_; }
  const QueueState& state() const { return state_; }

  // Checks the configured rings lie in guest memory and size is a power of two <= max_size.
  absl::Status Validate(const memory::GuestMemory& mem) const;

  // The next available chain, nullopt when the driver has published nothing new. A malformed
  // chain comes back with `error` set (see DescriptorChain). An error Status means the rings
  // themselves are unusable (the queue is broken until the driver resets the device).
  // `max_chain_bytes` replaces kMaxChainBytes for devices that never copy the buffers (the
  // balloon only madvises reported ranges, each of which Linux may make up to 4 MiB).
  absl::StatusOr<std::optional<DescriptorChain>> Pop(const memory::GuestMemory& mem,
                                                     uint64_t max_chain_bytes = kMaxChainBytes);

  // Publishes `len` bytes written for chain `head` in the used ring.
  absl::Status PushUsed(const memory::GuestMemory& mem, uint16_t head, uint32_t len);

 private:
  absl::StatusOr<DescriptorChain> WalkChain(const memory::GuestMemory& mem, uint16_t head,
                                            uint64_t max_chain_bytes) const;

  QueueState state_;
};

}  // namespace supermachine::devices::virtio
