// File: rng.cc
// virtio-rng request handling.
#include "worker/devices/virtio/rng.h"

#include <errno.h>
#include <sys/random.h>

#include <cstring>

#include "worker/base/status_macros.h"

namespace supermachine::devices::virtio {
namespace {

bool HostRandom(absl::Span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

Rng::Rng() : source_(HostRandom) {}

void Rng::ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const {
  std::memset(out.data(), 0, out.size());  // virtio-rng has no config space.
}

absl::StatusOr<bool> Rng::ProcessQueue(uint32_t index, Queue& queue,
                                       const memory::GuestMemory& mem) {
  bool used_any = false;
  while (true) {
    SM_ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, queue.Pop(mem));
    if (!chain.has_value()) {
      break;
    }
    uint32_t written = 0;
    if (chain->error.ok()) {
      for (const Descriptor& d : chain->descriptors) {
        if (!d.write_only || written >= kMaxBytesPerRequest) {
          continue;
        }
        const uint32_t n = std::min<uint32_t>(d.len, kMaxBytesPerRequest - written);
        // Validated by the chain walk; the slice cannot fail.
        SM_ASSIGN_OR_RETURN(uint8_t * buf, mem.HostSlice(d.addr, n));
        if (!source_(absl::Span<uint8_t>(buf, n))) {
          break;  // Report what we have; the driver asks again.
        }
        written += n;
      }
    }
    state_.bytes_served += written;
    SM_RETURN_IF_ERROR(queue.PushUsed(mem, chain->head, written));
    used_any = true;
  }
  return used_any;
}

}  // namespace supermachine::devices::virtio
