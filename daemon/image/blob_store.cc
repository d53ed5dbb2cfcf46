// File: blob_store.cc
// Verified, atomic, once-only blob ingestion (see the lifecycle in blob_store.h).
#include "daemon/image/blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {
namespace {

absl::Status WriteAll(int fd, const char* p, size_t n, const std::string& what) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return base::ErrnoToStatus(errno, absl::StrCat("write ", what));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& dir) {
  base::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    return base::ErrnoToStatus(errno, absl::StrCat("open dir ", dir));
  }
  if (::fsync(fd.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync dir ", dir));
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::Status(absl::ErrnoToStatusCode(ec.value()),
                        absl::StrCat("create cache dir ", dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

// Called with the digest's lock held: any ingest file for it belongs to a writer that died
// (a live one would hold the lock), so it is garbage.
void RemoveStaleIngestFiles(const std::string& dir, const Digest& digest) {
  const std::string prefix = absl::StrCat(".ingest-", digest.hex(), "-");
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return;
  }
  absl::Cleanup close_dir = [d] { ::closedir(d); };
  while (struct dirent* e = ::readdir(d)) {
    if (absl::StartsWith(e->d_name, prefix)) {
      ::unlinkat(::dirfd(d), e->d_name, 0);
    }
  }
}

// Whether the committed entry at `path` is a regular file of `expected_size` (when known)
// whose bytes hash to `digest`.
bool IsIntact(const std::string& path, const Digest& digest, std::optional<int64_t> expected_size) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      (expected_size.has_value() && st.st_size != *expected_size)) {
    return false;
  }
  absl::StatusOr<Digest> actual = Sha256OfFd(fd.get(), path);
  return actual.ok() && *actual == digest;
}

}  // namespace

absl::Status BlobWriter::Write(const void* data, size_t size) {
  if (expected_size_.has_value() && written_ + static_cast<int64_t>(size) > *expected_size_) {
    return absl::DataLossError(absl::StrCat("blob ", want_.ToString(), ": source sent more than the expected ",
                                            *expected_size_, " bytes"));
  }
  SM_RETURN_IF_ERROR(WriteAll(fd_, static_cast<const char*>(data), size, "blob ingest file"));
  hasher_.Update(data, size);
  written_ += static_cast<int64_t>(size);
  return absl::OkStatus();
}

absl::Status BlobWriter::Reset() {
  if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0) {
    return base::ErrnoToStatus(errno, "reset blob ingest file");
  }
  hasher_.Reset();
  written_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<BlobStore> BlobStore::Open(const std::string& root) {
  if (root.empty()) {
    return absl::InvalidArgumentError("blob store: empty root directory");
  }
  SM_RETURN_IF_ERROR(MakeDirs(absl::StrCat(root, "/blobs/sha256")));
  SM_RETURN_IF_ERROR(MakeDirs(absl::StrCat(root, "/locks/sha256")));
  return BlobStore(root);
}

std::string BlobStore::BlobDir() const { return absl::StrCat(root_, "/blobs/sha256"); }

std::string BlobStore::PathFor(const Digest& digest) const {
  return absl::StrCat(root_, "/blobs/sha256/", digest.hex());
}

bool BlobStore::Contains(const Digest& digest) const {
  struct stat st;
  return ::stat(PathFor(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool BlobStore::ContainsVerified(const Digest& digest) const {
  return IsIntact(PathFor(digest), digest, std::nullopt);
}

absl::StatusOr<std::string> BlobStore::ReadSmall(const Digest& digest, int64_t max_size) const {
  const std::string path = PathFor(digest);
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("blob ", digest.ToString(), " is not in the cache"));
    }
    return base::ErrnoToStatus(errno, absl::StrCat("open ", path));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("stat ", path));
  }
  if (st.st_size > max_size) {
    return absl::FailedPreconditionError(absl::StrCat("blob ", digest.ToString(), " is ",
                                                      st.st_size, " bytes, more than the ",
                                                      max_size, " allowed here"));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t r = ::read(fd.get(), out.data() + got, out.size() - got);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r <= 0) {
      return base::ErrnoToStatus(r < 0 ? errno : EIO, absl::StrCat("read ", path));
    }
    got += static_cast<size_t>(r);
  }
  if (Sha256Of(out) != digest) {
    return absl::DataLossError(absl::StrCat("cached blob ", path,
                                            " does not match its digest; remove it and pull again"));
  }
  return out;
}

absl::StatusOr<IngestResult> BlobStore::Ingest(
    const Digest& digest, std::optional<int64_t> expected_size,
    absl::FunctionRef<absl::Status(BlobWriter&)> fill) const {
  const std::string final_path = PathFor(digest);
  const std::string lock_path = absl::StrCat(root_, "/locks/sha256/", digest.hex(), ".lock");
  base::UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock) {
    return base::ErrnoToStatus(errno, absl::StrCat("open lock ", lock_path));
  }
  // The lock lives as long as `lock`; closing the fd releases it. Lock files are never
  // unlinked: unlinking would let two processes lock different inodes of one name.
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      return base::ErrnoToStatus(errno, absl::StrCat("flock ", lock_path));
    }
  }
  struct stat st;
  if (::lstat(final_path.c_str(), &st) == 0) {
    if (IsIntact(final_path, digest, expected_size)) {
      return IngestResult{.path = final_path, .size = st.st_size, .already_present = true};
    }
    // Damaged since it was committed (disk error, stray edit): never hand it out; fetch again.
    std::error_code ec;
    std::filesystem::remove_all(final_path, ec);
    if (ec) {
      return absl::DataLossError(absl::StrCat("cached blob ", final_path,
                                              " is damaged and cannot be removed (", ec.message(),
                                              "); remove it by hand and pull again"));
    }
  }

  RemoveStaleIngestFiles(BlobDir(), digest);

  std::string tmp = absl::StrCat(BlobDir(), "/.ingest-", digest.hex(), "-XXXXXX");
  base::UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) {
    return base::ErrnoToStatus(errno, absl::StrCat("create ingest file in ", BlobDir()));
  }
  bool committed = false;
  absl::Cleanup remove_tmp = [&] {
    if (!committed) {
      ::unlink(tmp.c_str());
    }
  };
  // mkostemp creates 0600; committed blobs are world-readable like any cache file.
  ::fchmod(fd.get(), 0644);

  BlobWriter writer(fd.get(), digest, expected_size);
  SM_RETURN_IF_ERROR(fill(writer));
  if (expected_size.has_value() && writer.written() != *expected_size) {
    return absl::DataLossError(absl::StrCat("blob ", digest.ToString(), ": truncated: got ",
                                            writer.written(), " of ", *expected_size, " bytes"));
  }
  const Digest got = writer.hasher_.Finish();
  if (got != digest) {
    return absl::DataLossError(absl::StrCat("blob ", digest.ToString(), ": digest mismatch (got ",
                                            got.ToString(), " for ", writer.written(), " bytes)"));
  }
  if (::fsync(fd.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync ", tmp));
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("rename ", tmp, " to ", final_path));
  }
  committed = true;
  SM_RETURN_IF_ERROR(FsyncDir(BlobDir()));
  return IngestResult{.path = final_path, .size = writer.written(), .already_present = false};
}

absl::StatusOr<IngestResult> BlobStore::PutBytes(const Digest& digest,
                                                 absl::string_view bytes) const {
  return Ingest(digest, static_cast<int64_t>(bytes.size()),
                [&](BlobWriter& w) { return w.Write(bytes); });
}

}  // namespace supermachine::image
