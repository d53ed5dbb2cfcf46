// File: block.cc
// virtio-blk request handling.
#include "worker/devices/virtio/block.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::devices::virtio {
namespace {

struct RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

bool FullIo(bool write, int fd, uint8_t* buf, uint64_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t n = write ? pwrite(fd, buf, len, static_cast<off_t>(offset))
                      : pread(fd, buf, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    buf += n;
    len -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Block>> Block::Open(const BlockConfig& config) {
  base::UniqueFd fd(open(config.path.c_str(), (config.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!fd.valid()) {
    return base::ErrnoToStatus(
        errno, absl::StrCat("disk '", config.path, "' (", config.read_only ? "ro" : "rw", ")"));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("disk '", config.path, "': stat"));
  }
  uint64_t size = 0;
  if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(fd.get(), 0, SEEK_END);
    if (end < 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("disk '", config.path, "': size"));
    }
    size = static_cast<uint64_t>(end);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("disk '", config.path, "': not a regular file or block device"));
  }
  if (size < kSectorSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "disk '", config.path, "': ", size, " bytes; a disk needs at least one 512-byte sector"));
  }
  // A trailing partial sector is not addressable by the guest.
  return std::unique_ptr<Block>(new Block(config, std::move(fd), size / kSectorSize));
}

uint64_t Block::features() const {
  uint64_t f = kFeatureVersion1 | kFeatureBlockFlush;
  if (config_.read_only) {
    f |= kFeatureBlockRo;
  }
  return f;
}

void Block::ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const {
  // struct virtio_blk_config starts with le64 capacity (in 512-byte sectors); we offer no
  // feature that makes the driver read further fields.
  uint8_t config[8];
  std::memcpy(config, &state_.capacity_sectors, 8);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = offset + i < sizeof(config) ? config[offset + i] : 0;
  }
}

std::pair<uint8_t, uint32_t> Block::Handle(const memory::GuestMemory& mem,
                                           const DescriptorChain& chain,
                                           const Descriptor& status_desc) {
  RequestHeader hdr{};
  absl::StatusOr<uint64_t> got = ReadFromChain(
      mem, chain, 0, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&hdr), sizeof(hdr)));
  if (!got.ok() || *got != sizeof(hdr)) {
    return {kBlockStatusIoErr, 0};
  }
  // Data descriptors: everything after the header bytes and before the status byte.
  const size_t n = chain.descriptors.size() - 1;  // Excluding the status descriptor.
  switch (hdr.type) {
    case kBlockRequestIn:
    case kBlockRequestOut: {
      const bool is_write = hdr.type == kBlockRequestOut;
      if (is_write && config_.read_only) {
        return {kBlockStatusIoErr, 0};
      }
      uint64_t offset = 0;
      if (hdr.sector > state_.capacity_sectors) {
        return {kBlockStatusIoErr, 0};
      }
      offset = hdr.sector * kSectorSize;
      const uint64_t capacity_bytes = state_.capacity_sectors * kSectorSize;
      uint64_t header_left = sizeof(hdr);
      uint32_t written = 0;
      // First check the whole request is in range and well-formed, so a failed request does
      // not half-happen.
      uint64_t total = 0;
      for (size_t i = 0; i < n; ++i) {
        const Descriptor& d = chain.descriptors[i];
        uint64_t skip = std::min<uint64_t>(header_left, d.len);
        header_left -= skip;
        if (d.len == skip) {
          continue;
        }
        if (skip != 0 || d.write_only != !is_write) {
          return {kBlockStatusIoErr, 0};
        }
        total += d.len;
      }
      if (total % kSectorSize != 0 || total > capacity_bytes - offset) {
        return {kBlockStatusIoErr, 0};
      }
      header_left = sizeof(hdr);
      for (size_t i = 0; i < n; ++i) {
        const Descriptor& d = chain.descriptors[i];
        uint64_t skip = std::min<uint64_t>(header_left, d.len);
        header_left -= skip;
        if (d.len == skip) {
          continue;
        }
        absl::StatusOr<uint8_t*> buf = mem.HostSlice(d.addr, d.len);
        if (!buf.ok() || !FullIo(is_write, fd_.get(), *buf, d.len, offset)) {
          return {kBlockStatusIoErr, written};
        }
        offset += d.len;
        if (!is_write) {
          written += d.len;
        }
      }
      return {kBlockStatusOk, written};
    }
    case kBlockRequestFlush:
      if (!config_.read_only && fdatasync(fd_.get()) != 0) {
        return {kBlockStatusIoErr, 0};
      }
      return {kBlockStatusOk, 0};
    case kBlockRequestGetId: {
      uint8_t id[kBlockIdBytes] = {};
      std::memcpy(id, config_.id.data(), std::min<size_t>(config_.id.size(), kBlockIdBytes));
      uint32_t written = 0;
      for (size_t i = 0; i < n && written < kBlockIdBytes; ++i) {
        const Descriptor& d = chain.descriptors[i];
        if (!d.write_only) {
          continue;
        }
        const uint32_t len = std::min<uint32_t>(d.len, kBlockIdBytes - written);
        if (!mem.Write(d.addr, absl::Span<const uint8_t>(id + written, len)).ok()) {
          return {kBlockStatusIoErr, written};
        }
        written += len;
      }
      return {kBlockStatusOk, written};
    }
    default:
      return {kBlockStatusUnsupp, 0};
  }
}

absl::StatusOr<bool> Block::ProcessQueue(uint32_t index, Queue& queue,
                                         const memory::GuestMemory& mem) {
  bool used_any = false;
  absl::Status first_error;
  while (true) {
    SM_ASSIGN_OR_RETURN(std::optional<DescriptorChain> popped, queue.Pop(mem));
    if (!popped.has_value()) {
      break;
    }
    if (!popped->error.ok()) {
      // Complete a malformed chain with nothing written so the driver is not left waiting.
      if (first_error.ok()) {
        first_error = popped->error;
      }
      SM_RETURN_IF_ERROR(queue.PushUsed(mem, popped->head, 0));
      used_any = true;
      continue;
    }
    const DescriptorChain& chain = *popped;
    const Descriptor& status_desc = chain.descriptors.back();
    if (chain.descriptors.size() < 2 || !status_desc.write_only || status_desc.len < 1) {
      // No status byte to report through: complete with nothing written.
      SM_RETURN_IF_ERROR(queue.PushUsed(mem, chain.head, 0));
      used_any = true;
      continue;
    }
    auto [status, written] = Handle(mem, chain, status_desc);
    // The status byte is the last byte of the last descriptor.
    SM_RETURN_IF_ERROR(mem.WriteObj<uint8_t>(status_desc.addr + status_desc.len - 1, status));
    SM_RETURN_IF_ERROR(queue.PushUsed(mem, chain.head, written + 1));
    used_any = true;
  }
  if (!first_error.ok()) {
    last_error_ = first_error.ToString();
  }
  return used_any;
}

}  // namespace supermachine::devices::virtio
