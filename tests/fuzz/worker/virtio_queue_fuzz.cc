// File: virtio_queue_fuzz.cc
// Fuzzes what a hostile driver controls: the fuzz input becomes the start of guest memory
// (descriptor table at 0x1000, avail ring at 0x2000, used ring at 0x3000, buffers anywhere),
// and its first two bytes pick the queue size and the device (virtio-blk over a memfd disk, or
// virtio-rng). Any crash, sanitizer report or hang is a bug; bad chains must fail the request.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "worker/base/unique_fd.h"
#include "worker/devices/virtio/block.h"
#include "worker/devices/virtio/rng.h"
#include "worker/memory/guest_memory.h"

namespace {

using namespace supermachine;  // NOLINT: a fuzz target's only scope.

constexpr uint64_t kMemSize = 1 << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) {
    return 0;
  }
  const uint16_t queue_size = static_cast<uint16_t>(1u << (data[0] % 9));  // 1..256
  const bool use_block = (data[1] & 1) == 0;
  auto mem = memory::GuestMemory::Create({{.guest_base = 0, .size = kMemSize}});
  if (!mem.ok()) {
    return 0;
  }
  const size_t n = std::min<size_t>(size - 2, kMemSize);
  (void)mem->Write(0, absl::Span<const uint8_t>(data + 2, n));

  devices::virtio::QueueState state;
  state.max_size = 256;
  state.size = queue_size;
  state.ready = true;
  state.desc_table = 0x1000;
  state.avail_ring = 0x2000;
  state.used_ring = 0x3000;
  devices::virtio::Queue queue(state);
  if (!queue.Validate(*mem).ok()) {
    return 0;
  }
  if (use_block) {
    // A 64 KiB disk in a memfd, opened through /proc so Block::Open's path logic runs too.
    base::UniqueFd disk(memfd_create("fuzz-disk", MFD_CLOEXEC));
    if (!disk.valid() || ftruncate(disk.get(), 64 * 1024) != 0) {
      return 0;
    }
    auto dev = devices::virtio::Block::Open(
        {.path = "/proc/self/fd/" + std::to_string(disk.get()), .read_only = (data[1] & 2) != 0,
         .id = "fuzz"});
    if (dev.ok()) {
      (void)(*dev)->ProcessQueue(0, queue, *mem);
    }
  } else {
    devices::virtio::Rng rng([](absl::Span<uint8_t> out) {
      std::memset(out.data(), 0x42, out.size());
      return true;
    });
    (void)rng.ProcessQueue(0, queue, *mem);
  }
  return 0;
}
