// File: balloon.cc
// virtio-balloon queue handling: validate every reported range or PFN, then drop the host pages.
#include "worker/devices/virtio/balloon.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/base/status_macros.h"

namespace supermachine::devices::virtio {
namespace {

constexpr uint64_t kPage = 1ull << kBalloonPfnShift;
constexpr uint64_t kConfigActualOffset = 4;

const memory::Region* RegionOf(const memory::GuestMemory& mem, uint64_t addr, uint64_t len) {
  for (const memory::Region& r : mem.regions()) {
    if (r.Contains(addr, len)) {
      return &r;
    }
  }
  return nullptr;
}

// A reported or ballooned range the guest may legitimately give back.
absl::Status CheckRange(const memory::GuestMemory& mem, uint64_t addr, uint64_t len) {
  if (len == 0 || addr % kPage != 0 || len % kPage != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "range [0x%x, +0x%x) is empty or not 4 KiB-aligned", addr, len));
  }
  if (RegionOf(mem, addr, len) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("range [0x%x, +0x%x) is not inside guest RAM", addr, len));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DiscardGuestRange(const memory::GuestMemory& mem, uint64_t addr, uint64_t len) {
  SM_RETURN_IF_ERROR(CheckRange(mem, addr, len));
  const memory::Region& r = *RegionOf(mem, addr, len);
  const uint64_t offset = addr - r.guest_base;
  if (mem.is_private()) {
    // The anonymous copy-on-write page goes; the next access faults the RAM file's page back
    // in (shared page cache, no new memory for clones of one snapshot).
    if (madvise(r.host() + offset, len, MADV_DONTNEED) != 0) {
      return base::ErrnoToStatus(errno, absl::StrFormat("madvise(DONTNEED) guest 0x%x", addr));
    }
    return absl::OkStatus();
  }
  // Shared memfd: unmapping is not enough, the file holds the page. A hole frees it and
  // unmaps it from every mapping (KVM's included, through its MMU notifier).
  if (fallocate(mem.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(r.file_offset + offset), static_cast<off_t>(len)) != 0) {
    return base::ErrnoToStatus(errno, absl::StrFormat("punch hole in guest RAM at 0x%x", addr));
  }
  return absl::OkStatus();
}

void Balloon::ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const {
  // Little-endian virtio_balloon_config; the hint command id and poison value stay 0 (neither
  // feature is offered).
  std::array<uint8_t, kConfigSize> config{};
  std::memcpy(config.data(), &state_.num_pages, 4);
  std::memcpy(config.data() + kConfigActualOffset, &state_.actual, 4);
  std::memset(out.data(), 0, out.size());
  if (offset < config.size()) {
    std::memcpy(out.data(), config.data() + offset,
                std::min<uint64_t>(out.size(), config.size() - offset));
  }
}

void Balloon::WriteConfig(uint64_t offset, absl::Span<const uint8_t> in) {
  // Only `actual` is driver-writable; Linux writes it whole.
  if (offset == kConfigActualOffset && in.size() == 4) {
    std::memcpy(&state_.actual, in.data(), 4);
  }
}

void Balloon::Reset() {
  state_.acked_features = 0;
  state_.actual = 0;
}

absl::StatusOr<bool> Balloon::ProcessQueue(uint32_t index, Queue& queue,
                                           const memory::GuestMemory& mem) {
  switch (index) {
    case kInflateQueue:
      return ProcessPfns(queue, mem, /*inflate=*/true);
    case kDeflateQueue:
      return ProcessPfns(queue, mem, /*inflate=*/false);
    case kReportingQueue:
      return ProcessReports(queue, mem);
    default:
      return absl::InvalidArgumentError(absl::StrCat("virtio-balloon: no queue ", index));
  }
}

absl::StatusOr<bool> Balloon::ProcessReports(Queue& queue, const memory::GuestMemory& mem) {
  bool used_any = false;
  while (true) {
    // Bounded by the guest's RAM rather than kMaxChainBytes: nothing is copied, and a chain
    // describing more than all of RAM is nonsense anyway.
    SM_ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain,
                        queue.Pop(mem, std::max<uint64_t>(mem.total_size(), kPage)));
    if (!chain.has_value()) {
      break;
    }
    // Check the whole chain first: a hostile chain mixing good and bad ranges touches nothing.
    absl::Status valid = chain->error;
    for (const Descriptor& d : chain->descriptors) {
      if (!valid.ok()) {
        break;
      }
      valid = CheckRange(mem, d.addr, d.len);
    }
    if (valid.ok()) {
      for (const Descriptor& d : chain->descriptors) {
        if (DiscardGuestRange(mem, d.addr, d.len).ok()) {
          ++state_.reported_ranges;
          state_.reported_bytes += d.len;
        } else {
          ++state_.discard_errors;  // The page stays in use; nothing the guest can act on.
        }
      }
    } else {
      ++state_.rejected_chains;
    }
    // The buffers go back either way (the driver waits for them); nothing is written.
    SM_RETURN_IF_ERROR(queue.PushUsed(mem, chain->head, 0));
    used_any = true;
  }
  return used_any;
}

absl::StatusOr<bool> Balloon::ProcessPfns(Queue& queue, const memory::GuestMemory& mem,
                                          bool inflate) {
  bool used_any = false;
  while (true) {
    SM_ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, queue.Pop(mem));
    if (!chain.has_value()) {
      break;
    }
    std::array<uint32_t, kMaxPfnsPerRequest> pfns{};
    uint64_t count = 0;
    absl::Status valid = chain->error;
    if (valid.ok()) {
      uint64_t readable = 0;
      for (const Descriptor& d : chain->descriptors) {
        readable += d.write_only ? 0 : d.len;
      }
      if (readable % sizeof(uint32_t) != 0 || readable > sizeof(pfns)) {
        valid = absl::InvalidArgumentError(
            absl::StrCat("PFN array of ", readable, " bytes (at most ", sizeof(pfns), ")"));
      } else {
        SM_ASSIGN_OR_RETURN(
            uint64_t got,
            ReadFromChain(mem, *chain, 0,
                          absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(pfns.data()),
                                              static_cast<size_t>(readable))));
        count = got / sizeof(uint32_t);
      }
    }
    // Validate every PFN before dropping any.
    for (uint64_t i = 0; i < count && valid.ok(); ++i) {
      valid = CheckRange(mem, static_cast<uint64_t>(pfns[i]) << kBalloonPfnShift, kPage);
    }
    if (!valid.ok()) {
      ++state_.rejected_chains;
    } else if (inflate) {
      // Linux hands out PFNs mostly in ascending runs: one call per run, not per page.
      uint64_t i = 0;
      while (i < count) {
        uint64_t run = 1;
        const uint64_t start = static_cast<uint64_t>(pfns[i]) << kBalloonPfnShift;
        while (i + run < count &&
               static_cast<uint64_t>(pfns[i + run]) == static_cast<uint64_t>(pfns[i]) + run &&
               RegionOf(mem, start, (run + 1) * kPage) != nullptr) {
          ++run;
        }
        if (DiscardGuestRange(mem, start, run * kPage).ok()) {
          state_.inflated_pages += run;
        } else {
          ++state_.discard_errors;
        }
        i += run;
      }
    } else {
      // Deflate needs nothing from us: without MUST_TELL_HOST the guest may reuse the pages
      // anyway, and a dropped page faults back in on first touch.
      state_.deflated_pages += count;
    }
    SM_RETURN_IF_ERROR(queue.PushUsed(mem, chain->head, 0));
    used_any = true;
  }
  return used_any;
}

absl::Status Balloon::SetTarget(uint32_t pages, uint64_t ram_bytes) {
  const uint64_t ram_pages = ram_bytes / kPage;
  if (pages > ram_pages) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "balloon target of %u pages (%u MiB) exceeds the guest's RAM of %u MiB (%u pages)",
        pages, (static_cast<uint64_t>(pages) * kPage) >> 20, ram_bytes >> 20, ram_pages));
  }
  state_.num_pages = pages;
  return absl::OkStatus();
}

absl::Status SetBalloonTarget(MmioTransport& transport, uint32_t pages) {
  return transport.ChangeConfig(
      [pages](VirtioDevice& d, const memory::GuestMemory& mem) -> absl::Status {
        if (d.device_type() != kDeviceTypeBalloon) {
          return absl::FailedPreconditionError(
              absl::StrCat(d.name(), " is not a balloon: it has no target"));
        }
        return static_cast<Balloon&>(d).SetTarget(pages, mem.total_size());
      });
}

std::string Balloon::StatsLine() const {
  return absl::StrCat("reported_ranges=", state_.reported_ranges,
                      " reported_bytes=", state_.reported_bytes,
                      " inflated_pages=", state_.inflated_pages,
                      " deflated_pages=", state_.deflated_pages, " actual_pages=", state_.actual,
                      " rejected_chains=", state_.rejected_chains,
                      " discard_errors=", state_.discard_errors);
}

}  // namespace supermachine::devices::virtio
