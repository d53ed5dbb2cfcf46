// File: memory_file.cc
// Sparse write-out of guest RAM and its private mapping on restore.
#include "worker/snapshot/memory_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::snapshot {
namespace {


// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
constexpr uint64_t kPagemapPresent = 1ull << 63;
constexpr uint64_t kPagemapSwapped = 1ull << 62;
// Write at most this much per pwrite, so one call never pins a huge range.
constexpr uint64_t kMaxWriteChunk = 1ull << 20;

bool IsZero(const uint8_t* p, uint64_t len) {
  const auto* words = reinterpret_cast<const uint64_t*>(p);
  for (uint64_t i = 0; i < len / sizeof(uint64_t); ++i) {
    if (words[i] != 0) {
      return false;
    }
  }
  return true;
}

// Marks the pages of [region.file_offset, +size) in the backing file that SEEK_DATA reports as
// data. ENXIO past the last data; a file system without SEEK_DATA support reports everything
// as data, which is correct, only slower.
absl::Status MarkFileData(int fd, const memory::Region& region, uint64_t page,
                          std::vector<bool>* candidate) {
  const auto begin = static_cast<off_t>(region.file_offset);
  const auto end = static_cast<off_t>(region.file_offset + region.size);
  off_t pos = begin;
  while (pos < end) {
    off_t data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) {
        break;
      }
      return base::ErrnoToStatus(errno, "lseek SEEK_DATA on guest RAM");
    }
    if (data >= end) {
      break;
    }
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) {
      return base::ErrnoToStatus(errno, "lseek SEEK_HOLE on guest RAM");
    }
    hole = std::min(hole, end);
    const uint64_t first = static_cast<uint64_t>(data - begin) / page;
    const uint64_t last = (static_cast<uint64_t>(hole - begin) + page - 1) / page;
    for (uint64_t i = first; i < last; ++i) {
      (*candidate)[i] = true;
    }
    pos = hole;
  }
  return absl::OkStatus();
}

// Marks the pages of a private mapping that exist in this process (present or swapped): the
// copies the guest wrote, which the backing file does not have.
absl::Status MarkResidentPages(const memory::Region& region, uint64_t page,
                               std::vector<bool>* candidate) {
  base::UniqueFd fd(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return base::ErrnoToStatus(errno, "open /proc/self/pagemap");
  }
  const uint64_t pages = region.size / page;
  const uint64_t first_vpn = reinterpret_cast<uintptr_t>(region.host()) / page;
  std::vector<uint64_t> entries(std::min<uint64_t>(pages, 4096));
  for (uint64_t done = 0; done < pages;) {
    const uint64_t n = std::min<uint64_t>(pages - done, entries.size());
    const ssize_t got = pread(fd.get(), entries.data(), n * sizeof(uint64_t),
                              static_cast<off_t>((first_vpn + done) * sizeof(uint64_t)));
    if (got != static_cast<ssize_t>(n * sizeof(uint64_t))) {
      return base::ErrnoToStatus(got < 0 ? errno : EIO, "read /proc/self/pagemap");
    }
    for (uint64_t i = 0; i < n; ++i) {
      if ((entries[i] & (kPagemapPresent | kPagemapSwapped)) != 0) {
        (*candidate)[done + i] = true;
      }
    }
    done += n;
  }
  return absl::OkStatus();
}

absl::Status PwriteAll(int fd, const uint8_t* data, uint64_t len, uint64_t offset,
                       const std::string& what) {
  while (len > 0) {
    ssize_t n = pwrite(fd, data, std::min(len, kMaxWriteChunk), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return base::ErrnoToStatus(n < 0 ? errno : EIO, absl::StrCat("write ", what));
    }
    data += n;
    len -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

absl::StatusOr<MemoryFileStats> WriteMemoryFile(const memory::GuestMemory& mem,
                                                const std::string& path,
                                                v1::MemoryLayout* layout) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  base::UniqueFd out(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!out.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("create memory file ", tmp));
  }
  absl::Cleanup remove_tmp = [&tmp] { unlink(tmp.c_str()); };

  MemoryFileStats stats;
  stats.file_size = mem.total_size();
  // The whole file is a hole first; only data pages get written into it.
  if (ftruncate(out.get(), static_cast<off_t>(stats.file_size)) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("size memory file ", tmp, " to ",
                                                   stats.file_size, " bytes"));
  }
  layout->Clear();
  layout->set_file_name(BaseName(path));
  layout->set_file_size(stats.file_size);
  uint64_t out_offset = 0;
  for (const memory::Region& region : mem.regions()) {
    v1::MemoryRegion* r = layout->add_regions();
    r->set_guest_base(region.guest_base);
    r->set_size(region.size);
    r->set_file_offset(out_offset);

    std::vector<bool> candidate(region.size / page, false);
    SM_RETURN_IF_ERROR(MarkFileData(mem.fd(), region, page, &candidate));
    if (mem.is_private()) {
      SM_RETURN_IF_ERROR(MarkResidentPages(region, page, &candidate));
    }
    // Runs of non-zero candidate pages become one pwrite each.
    uint64_t run_start = 0;
    uint64_t run_len = 0;
    auto flush = [&]() -> absl::Status {
      if (run_len == 0) {
        return absl::OkStatus();
      }
      SM_RETURN_IF_ERROR(PwriteAll(out.get(), region.host() + run_start, run_len,
                                   out_offset + run_start, tmp));
      stats.data_bytes += run_len;
      run_len = 0;
      return absl::OkStatus();
    };
    for (uint64_t i = 0; i < candidate.size(); ++i) {
      const uint64_t off = i * page;
      bool data = false;
      if (candidate[i]) {
        stats.scanned_bytes += page;
        data = !IsZero(region.host() + off, page);
      }
      if (data) {
        if (run_len == 0) {
          run_start = off;
        }
        run_len += page;
      } else {
        SM_RETURN_IF_ERROR(flush());
      }
    }
    SM_RETURN_IF_ERROR(flush());
    out_offset += region.size;
  }
  if (fsync(out.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync memory file ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("rename ", tmp, " to ", path));
  }
  std::move(remove_tmp).Cancel();
  const std::string dir = DirName(path);
  base::UniqueFd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid() || fsync(dfd.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync directory ", dir));
  }
  return stats;
}

absl::StatusOr<memory::GuestMemory> MapMemoryFile(const std::string& dir,
                                                  const v1::MemoryLayout& layout) {
  if (layout.file_name().empty() || layout.file_name().find('/') != std::string::npos) {
    return absl::DataLossError(absl::StrCat("snapshot memory file name '", layout.file_name(),
                                            "' is not a plain file name; the state is corrupt"));
  }
  std::vector<memory::FileRegionSpec> specs;
  for (const v1::MemoryRegion& r : layout.regions()) {
    specs.push_back(memory::FileRegionSpec{
        .guest_base = r.guest_base(), .size = r.size(), .file_offset = r.file_offset()});
  }
  const std::string path = absl::StrCat(dir, "/", layout.file_name());
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) != layout.file_size()) {
    return absl::DataLossError(absl::StrFormat(
        "memory file %s is %d bytes, the snapshot recorded %d: it is truncated or from another "
        "snapshot",
        path, st.st_size, layout.file_size()));
  }
  return memory::GuestMemory::CreatePrivateFromFile(path, specs);
}

}  // namespace supermachine::snapshot
