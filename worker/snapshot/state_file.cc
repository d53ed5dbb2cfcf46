// File: state_file.cc
// Encoding, checking and atomic writing of the snapshot state file.
#include "worker/snapshot/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"
#include "worker/snapshot/sha256.h"

namespace supermachine::snapshot {
namespace {

void PutLe(std::string* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

uint64_t GetLe(absl::string_view in, size_t offset, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= static_cast<uint64_t>(static_cast<uint8_t>(in[offset + static_cast<size_t>(i)]))
             << (8 * i);
  }
  return value;
}

absl::Status WriteAll(int fd, absl::string_view bytes, const std::string& what) {
  while (!bytes.empty()) {
    ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return base::ErrnoToStatus(errno, absl::StrCat("write ", what));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string EncodeStateFile(v1::SnapshotState state) {
  state.set_format_major(kFormatMajor);
  state.set_format_minor(kFormatMinor);
  std::string payload;
  state.SerializeToString(&payload);
  std::string out(kStateMagic, sizeof(kStateMagic));
  PutLe(&out, kFormatMajor, 2);
  PutLe(&out, kFormatMinor, 2);
  PutLe(&out, 0, 4);  // Flags: none defined.
  PutLe(&out, payload.size(), 8);
  Sha256Digest digest = Sha256Of(payload);
  out.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  out += payload;
  return out;
}

absl::StatusOr<v1::SnapshotState> DecodeStateFile(absl::string_view bytes,
                                                  absl::string_view source) {
  if (bytes.size() < sizeof(kStateMagic) ||
      std::memcmp(bytes.data(), kStateMagic, sizeof(kStateMagic)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": not a supermachine snapshot state file (bad magic); pass the 'state' file of "
                "a snapshot directory written by supermachine-worker"));
  }
  if (bytes.size() < kStateHeaderSize) {
    return absl::DataLossError(absl::StrCat(source, ": truncated state file header (",
                                            bytes.size(), " of ", kStateHeaderSize,
                                            " bytes); take the snapshot again"));
  }
  const auto major = static_cast<uint16_t>(GetLe(bytes, 8, 2));
  const auto minor = static_cast<uint16_t>(GetLe(bytes, 10, 2));
  if (major != kFormatMajor || minor > kFormatMinor) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: snapshot format %d.%d, this worker reads %d.0 to %d.%d; restore it with the "
        "worker version that wrote it, or take the snapshot again",
        source, major, minor, kFormatMajor, kFormatMajor, kFormatMinor));
  }
  const uint64_t length = GetLe(bytes, 16, 8);
  if (length > kMaxStatePayload) {
    return absl::DataLossError(absl::StrFormat(
        "%s: state payload length %d exceeds the %d-byte limit; the file is corrupt", source,
        length, kMaxStatePayload));
  }
  const uint64_t have = bytes.size() - kStateHeaderSize;
  if (have < length) {
    return absl::DataLossError(absl::StrFormat(
        "%s: truncated state file (payload %d of %d bytes); the snapshot was not written "
        "completely, take it again",
        source, have, length));
  }
  if (have > length) {
    return absl::DataLossError(absl::StrFormat(
        "%s: %d unexpected bytes after the state payload; the file is corrupt", source,
        have - length));
  }
  absl::string_view payload = bytes.substr(kStateHeaderSize);
  Sha256Digest digest = Sha256Of(payload);
  if (std::memcmp(digest.data(), bytes.data() + 24, digest.size()) != 0) {
    return absl::DataLossError(absl::StrCat(
        source, ": state file checksum mismatch (the file is corrupt); take the snapshot again"));
  }
  v1::SnapshotState state;
  if (!state.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::DataLossError(
        absl::StrCat(source, ": state payload does not parse although its checksum matches; "
                             "the writer is broken, report a bug"));
  }
  return state;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    base::UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) {
      return base::ErrnoToStatus(errno, absl::StrCat("create ", tmp));
    }
    absl::Status st = WriteAll(fd.get(), bytes, tmp);
    if (st.ok() && fsync(fd.get()) != 0) {
      st = base::ErrnoToStatus(errno, absl::StrCat("fsync ", tmp));
    }
    if (!st.ok()) {
      unlink(tmp.c_str());
      return st;
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return base::ErrnoToStatus(err, absl::StrCat("rename ", tmp, " to ", path));
  }
  // The rename itself is durable only once the directory is synced.
  const std::string dir = DirName(path);
  base::UniqueFd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid() || fsync(dfd.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync directory ", dir));
  }
  return absl::OkStatus();
}

absl::Status WriteStateFile(const std::string& path, const v1::SnapshotState& state) {
  return WriteFileAtomically(path, EncodeStateFile(state));
}

absl::StatusOr<v1::SnapshotState> ReadStateFile(const std::string& path) {
  base::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("open snapshot state ", path));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("stat ", path));
  }
  // Size limit before reading anything: a huge file is refused, not slurped.
  if (static_cast<uint64_t>(st.st_size) > kStateHeaderSize + kMaxStatePayload) {
    return absl::DataLossError(absl::StrFormat(
        "%s: %d bytes is larger than any snapshot state file; wrong file or corrupt", path,
        st.st_size));
  }
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = pread(fd.get(), bytes.data() + done, bytes.size() - done,
                      static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) {
      break;
    }
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return DecodeStateFile(bytes, path);
}

}  // namespace supermachine::snapshot
