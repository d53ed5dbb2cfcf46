// File: guest-agent/rpc/files.cc
// write_file, read_file and stat. A write lands in a temporary file in the target's directory
// and is renamed over the target only once every byte is on disk, so a reader never sees half
// a file and a failed write leaves the old one in place.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "guest-agent/process/users.h"
#include "guest-agent/protocol/frame.h"
#include "guest-agent/rpc/connection.h"

namespace supermachine::agent::rpc {
namespace {

// mkdir -p of `dir` (0755 for what it creates).
int MakeParents(const std::string& dir) {
  if (dir.empty()) {
    return 0;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
  }
  const size_t slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (int rc = MakeParents(dir.substr(0, slash)); rc != 0) {
      return rc;
    }
  }
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return -errno;
  }
  return 0;
}

void FillInfo(const struct stat& st, v1::FileInfo* info) {
  info->set_exists(true);
  info->set_size(static_cast<uint64_t>(st.st_size));
  info->set_mode(st.st_mode);
  info->set_uid(st.st_uid);
  info->set_gid(st.st_gid);
  info->set_mtime_ns(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
}

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
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

void HandleWriteFile(const Connection& conn, const v1::WriteFileRequest& request) {
  const std::string& path = request.path();
  const std::string what = "write " + path;
  if (path.empty() || path[0] != '/' || path.back() == '/') {
    SendError(conn, kInvalidArgument, what + ": path must be absolute and name a file");
    return;
  }
  std::optional<ResolvedUser> owner;
  if (!request.user().empty()) {
    UserResult user = ResolveUser(request.user(), conn.ctx->root_dir);
    if (!user.ok) {
      SendError(conn, user.error.find("not found") != std::string::npos ? kNotFound
                                                                        : kInvalidArgument,
                what + ": owner: " + user.error);
      return;
    }
    owner = user.user;
  }
  const std::string dir = path.substr(0, path.rfind('/'));
  if (request.make_parents()) {
    if (int rc = MakeParents(dir); rc != 0) {
      SendError(conn, ErrnoToCode(-rc), ErrnoMessage(what + ": create parent " + dir, -rc));
      return;
    }
  }
  std::string temp = (dir.empty() ? std::string() : dir) + "/.sm-write-XXXXXX";
  int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string where = dir.empty() ? "/" : dir;
    SendError(conn, ErrnoToCode(err), ErrnoMessage(what + ": create in " + where, err));
    return;
  }
  auto fail = [&](int code, const std::string& message) {
    ::close(fd);
    ::unlink(temp.c_str());
    SendError(conn, code, message);
  };
  const mode_t mode = request.mode() != 0 ? (request.mode() & 07777) : 0644;
  uint64_t size = 0;
  v1::FileChunk chunk;
  while (true) {
    protocol::ReadStatus read = protocol::ReadMessage(conn.fd, &chunk);
    if (read.result != protocol::ReadResult::kOk) {
      fail(read.result == protocol::ReadResult::kMalformed ? kInvalidArgument : kAborted,
           what + ": " +
               (read.result == protocol::ReadResult::kEof ? "connection closed before eof chunk"
                                                          : read.message));
      return;
    }
    if (!WriteAll(fd, chunk.data())) {
      fail(ErrnoToCode(errno), ErrnoMessage(what, errno));
      return;
    }
    size += chunk.data().size();
    if (chunk.eof()) {
      break;
    }
  }
  // fchmod, not the open mode: the umask must not narrow what the host asked for.
  if (::fchmod(fd, mode) != 0) {
    fail(ErrnoToCode(errno), ErrnoMessage(what + ": chmod", errno));
    return;
  }
  if (owner && ::fchown(fd, owner->uid, owner->gid) != 0) {
    fail(ErrnoToCode(errno), ErrnoMessage(what + ": chown " + request.user(), errno));
    return;
  }
  if (::fsync(fd) != 0) {
    fail(ErrnoToCode(errno), ErrnoMessage(what + ": fsync", errno));
    return;
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    SendError(conn, ErrnoToCode(err), ErrnoMessage(what + ": close", err));
    return;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    SendError(conn, ErrnoToCode(err), ErrnoMessage(what + ": rename into place", err));
    return;
  }
  v1::Response response;
  response.mutable_file_written()->set_size(size);
  SendResponse(conn, response);
}

void HandleReadFile(const Connection& conn, const v1::ReadFileRequest& request) {
  const std::string what = "read " + request.path();
  int fd = ::open(request.path().c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    SendError(conn, ErrnoToCode(errno), ErrnoMessage(what, errno));
    return;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    SendError(conn, ErrnoToCode(err), ErrnoMessage(what, err));
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    SendError(conn, kFailedPrecondition, what + ": not a regular file");
    return;
  }
  const uint64_t max = request.max_bytes();
  if (max != 0 && static_cast<uint64_t>(st.st_size) > max) {
    ::close(fd);
    SendError(conn, kFailedPrecondition,
              what + ": " + std::to_string(st.st_size) + " bytes exceed max_bytes " +
                  std::to_string(max));
    return;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  v1::Response response;
  FillInfo(st, response.mutable_file_info());
  if (!SendResponse(conn, response)) {
    ::close(fd);
    return;
  }
  // Read to EOF rather than st_size: /proc and /sys files report 0. The limit still holds for
  // what is actually read; a file that grows past it ends the stream without an eof chunk.
  std::string buf(protocol::kMaxChunkBytes, '\0');
  uint64_t total = 0;
  v1::FileChunk chunk;
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      break;  // Mid-stream error: close without an eof chunk; the host sees a short read.
    }
    total += static_cast<uint64_t>(n);
    if (max != 0 && total > max) {
      break;
    }
    chunk.set_data(buf.data(), static_cast<size_t>(n));
    chunk.set_eof(n == 0);
    if (protocol::WriteMessage(conn.fd, chunk) != 0 || n == 0) {
      break;
    }
  }
  ::close(fd);
}

void HandleStat(const Connection& conn, const v1::StatRequest& request) {
  v1::Response response;
  v1::FileInfo* info = response.mutable_file_info();
  struct stat st {};
  if (::stat(request.path().c_str(), &st) == 0) {
    FillInfo(st, info);
  } else if (errno == ENOENT || errno == ENOTDIR) {
    info->set_exists(false);
  } else {
    SendError(conn, ErrnoToCode(errno), ErrnoMessage("stat " + request.path(), errno));
    return;
  }
  SendResponse(conn, response);
}

}  // namespace supermachine::agent::rpc
