// File: virtq_builder.h
// Test helper: plays the driver side of a split virtqueue in a real (memfd) GuestMemory —
// writes descriptors, publishes chains in the avail ring, reads the used ring.
#pragma once

#include <cstdint>
#include <vector>

#include "worker/devices/virtio/queue.h"
#include "worker/memory/guest_memory.h"

namespace supermachine::testing {

struct DescSpec {
  uint64_t addr;
  uint32_t len;
  bool write = false;
};

class VirtqBuilder {
 public:
  static constexpr uint64_t kDescTable = 0x1000;
  static constexpr uint64_t kAvail = 0x2000;
  static constexpr uint64_t kUsed = 0x3000;
  static constexpr uint64_t kData = 0x10000;  // Free space for buffers.

  // `base` shifts the rings (kDescTable, kAvail, kUsed) so several queues can share memory.
  VirtqBuilder(const memory::GuestMemory& mem, uint16_t size, uint64_t base = 0)
      : mem_(mem), size_(size), base_(base) {}

  uint64_t desc_table() const { return base_ + kDescTable; }
  uint64_t avail() const { return base_ + kAvail; }
  uint64_t used() const { return base_ + kUsed; }

  devices::virtio::QueueState State() const {
    devices::virtio::QueueState s;
    s.max_size = size_;
    s.size = size_;
    s.ready = true;
    s.desc_table = desc_table();
    s.avail_ring = avail();
    s.used_ring = used();
    return s;
  }

  // Raw descriptor write (flags: 1 NEXT, 2 WRITE, 4 INDIRECT).
  void SetDesc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    (void)mem_.WriteObj<uint64_t>(desc_table() + 16ull * index, addr);
    (void)mem_.WriteObj<uint32_t>(desc_table() + 16ull * index + 8, len);
    (void)mem_.WriteObj<uint16_t>(desc_table() + 16ull * index + 12, flags);
    (void)mem_.WriteObj<uint16_t>(desc_table() + 16ull * index + 14, next);
  }

  // Writes a chain at descriptors first..first+n-1 and publishes its head. Descriptors are
  // used round-robin (the caller keeps at most `size` of them outstanding).
  uint16_t AddChain(const std::vector<DescSpec>& descs) {
    if (next_desc_ + descs.size() > size_) {
      next_desc_ = 0;
    }
    const uint16_t head = next_desc_;
    for (size_t i = 0; i < descs.size(); ++i) {
      const bool last = i + 1 == descs.size();
      const uint16_t idx = static_cast<uint16_t>(next_desc_ + i);
      SetDesc(idx, descs[i].addr, descs[i].len,
              static_cast<uint16_t>((last ? 0 : 1) | (descs[i].write ? 2 : 0)),
              static_cast<uint16_t>(idx + 1));
    }
    next_desc_ = static_cast<uint16_t>(next_desc_ + descs.size());
    Publish(head);
    return head;
  }

  void Publish(uint16_t head) {
    (void)mem_.WriteObj<uint16_t>(avail() + 4 + 2ull * (avail_idx_ % size_), head);
    ++avail_idx_;
    (void)mem_.WriteObj<uint16_t>(avail() + 2, avail_idx_);
  }

  void SetAvailIdx(uint16_t idx) { (void)mem_.WriteObj<uint16_t>(avail() + 2, idx); }

  uint16_t UsedIdx() const { return *mem_.ReadObj<uint16_t>(used() + 2); }
  // Entry i of the used ring (i is a free-running index; it wraps at the queue size).
  uint32_t UsedId(uint16_t i) const {
    return *mem_.ReadObj<uint32_t>(used() + 4 + 8ull * (i % size_));
  }
  uint32_t UsedLen(uint16_t i) const {
    return *mem_.ReadObj<uint32_t>(used() + 8 + 8ull * (i % size_));
  }

 private:
  const memory::GuestMemory& mem_;
  uint16_t size_;
  uint64_t base_;
  uint16_t next_desc_ = 0;
  uint16_t avail_idx_ = 0;
};

}  // namespace supermachine::testing
