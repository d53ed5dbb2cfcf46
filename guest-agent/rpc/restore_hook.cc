// File: guest-agent/rpc/restore_hook.cc
// The `restored` operation (see restore_hook.h) and the real System. Reseeding follows Kata's
// agent (src/agent/src/random.rs): RNDADDENTROPY with the host's bytes credited, then
// RNDRESEEDCRNG so the CRNG is rekeyed now rather than at its next scheduled reseed.
#include "guest-agent/rpc/restore_hook.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "guest-agent/net/configure.h"
#include "guest-agent/rpc/connection.h"

#ifndef RNDRESEEDCRNG
#define RNDRESEEDCRNG _IO('R', 0x07)  // Linux 4.17; older uapi headers lack it.
#endif

namespace supermachine::agent::rpc {
namespace {

constexpr size_t kMaxEntropyBytes = 512;  // More than any reseed needs; bounds the ioctl buffer.

class LinuxSystem : public System {
 public:
  int AddEntropy(const std::string& bytes) override {
    int fd = ::open("/dev/random", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      return -errno;
    }
    // struct rand_pool_info ends in a flexible array: build it in a byte buffer.
    std::vector<char> buf(sizeof(rand_pool_info) + bytes.size());
    auto* info = reinterpret_cast<rand_pool_info*>(buf.data());
    info->entropy_count = static_cast<int>(bytes.size() * 8);
    info->buf_size = static_cast<int>(bytes.size());
    std::memcpy(buf.data() + sizeof(rand_pool_info), bytes.data(), bytes.size());
    int rc = ::ioctl(fd, RNDADDENTROPY, info) == 0 ? 0 : -errno;
    ::close(fd);
    return rc;
  }
  int ReseedCrng() override {
    int fd = ::open("/dev/random", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      return -errno;
    }
    int rc = ::ioctl(fd, RNDRESEEDCRNG) == 0 ? 0 : -errno;
    ::close(fd);
    return rc;
  }
  int SetWallClock(int64_t unix_ns) override {
    timespec ts{};
    ts.tv_sec = unix_ns / 1000000000;
    ts.tv_nsec = unix_ns % 1000000000;
    return ::clock_settime(CLOCK_REALTIME, &ts) == 0 ? 0 : -errno;
  }
  int SetHostname(const std::string& hostname) override {
    return ::sethostname(hostname.data(), hostname.size()) == 0 ? 0 : -errno;
  }
};

// mkdir -p for the few fixed directories we write into.
int EnsureDir(const std::string& dir) {
  if (dir.empty()) {
    return 0;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
  }
  size_t slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (int rc = EnsureDir(dir.substr(0, slash)); rc != 0) {
      return rc;
    }
  }
  return ::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

// Whole-file replace via a temp file + rename, so readers see old or new, never half.
int ReplaceFile(const std::string& path, const std::string& contents) {
  if (int rc = EnsureDir(path.substr(0, path.rfind('/'))); rc != 0) {
    return rc;
  }
  std::string temp = path + ".XXXXXX";
  int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) {
    return -errno;
  }
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      return -err;
    }
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, 0644) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return -err;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return -err;
  }
  return 0;
}

bool IsMachineId(const std::string& id) {
  if (id.size() != 32) {
    return false;
  }
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

bool IsHostname(const std::string& name) {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

RestoreResult Fail(int err, const std::string& what) {
  return {ErrnoToCode(err), ErrnoMessage(what, err)};
}

}  // namespace

System* RealSystem() {
  static LinuxSystem system;
  return &system;
}

RestoreResult ApplyRestore(const v1::RestoredRequest& request, System* system,
                           const std::string& root_dir) {
  const std::string root = root_dir == "/" ? "" : root_dir;
  // Validate everything first: a bad field must not leave the guest half-updated.
  if (request.entropy().size() > kMaxEntropyBytes) {
    return {kInvalidArgument, "restored: entropy of " + std::to_string(request.entropy().size()) +
                                  " bytes exceeds " + std::to_string(kMaxEntropyBytes)};
  }
  if (!request.hostname().empty() && !IsHostname(request.hostname())) {
    return {kInvalidArgument, "restored: hostname \"" + request.hostname() +
                                  "\" is not 1-64 letters, digits, '-' or '.'"};
  }
  if (!request.machine_id().empty() && !IsMachineId(request.machine_id())) {
    return {kInvalidArgument, "restored: machine_id must be 32 lowercase hex digits"};
  }
  if (request.vm_id().find_first_of("/\n") != std::string::npos) {
    return {kInvalidArgument, "restored: vm_id must not contain '/' or newlines"};
  }
  if (request.wall_clock_ns() < 0) {
    return {kInvalidArgument, "restored: wall_clock_ns is negative"};
  }

  if (!request.entropy().empty()) {
    if (int rc = system->AddEntropy(request.entropy()); rc != 0) {
      return Fail(-rc, "restored: RNDADDENTROPY");
    }
    // Kernels before 4.17 lack the ioctl; their next reseed uses the credited pool anyway.
    if (int rc = system->ReseedCrng(); rc != 0 && rc != -ENOTTY && rc != -EINVAL) {
      return Fail(-rc, "restored: RNDRESEEDCRNG");
    }
  }
  if (request.wall_clock_ns() > 0) {
    if (int rc = system->SetWallClock(request.wall_clock_ns()); rc != 0) {
      return Fail(-rc, "restored: set wall clock");
    }
  }
  if (!request.hostname().empty()) {
    if (int rc = system->SetHostname(request.hostname()); rc != 0) {
      return Fail(-rc, "restored: sethostname " + request.hostname());
    }
    if (int rc = ReplaceFile(root + "/etc/hostname", request.hostname() + "\n"); rc != 0) {
      return Fail(-rc, "restored: write " + root + "/etc/hostname");
    }
  }
  if (!request.machine_id().empty()) {
    if (int rc = ReplaceFile(root + "/etc/machine-id", request.machine_id() + "\n"); rc != 0) {
      return Fail(-rc, "restored: write " + root + "/etc/machine-id");
    }
  }
  if (!request.vm_id().empty()) {
    if (int rc = ReplaceFile(root + "/run/supermachine/vm-id", request.vm_id() + "\n"); rc != 0) {
      return Fail(-rc, "restored: write " + root + "/run/supermachine/vm-id");
    }
  }
  if (int rc = ReplaceFile(root + "/run/supermachine/generation",
                           std::to_string(request.generation()) + "\n");
      rc != 0) {
    return Fail(-rc, "restored: write " + root + "/run/supermachine/generation");
  }
  return {};
}

void HandleRestored(const Connection& conn, const v1::RestoredRequest& request) {
  RestoreResult result = ApplyRestore(request, conn.ctx->system, conn.ctx->root_dir);
  if (result.code == kOk) {
    // The clone's NIC has a new MAC and a fresh passt: re-probe and re-configure it.
    if (std::string err = net::ApplyFromKernelCmdline(true, conn.ctx->root_dir); !err.empty()) {
      result = {kUnavailable, "restored: network: " + err};
    }
  }
  if (result.code != kOk) {
    SendError(conn, result.code, result.message);
    return;
  }
  conn.ctx->generation.store(request.generation());
  // A parked workload (bake readiness "parked") starts on the first restore, after the reseed
  // and the clock, so it never sees the snapshot's RNG state or time.
  if (std::string err = conn.ctx->workload->StartParked(); !err.empty()) {
    SendError(conn, kFailedPrecondition, "restored: the parked workload cannot start: " + err);
    return;
  }
  v1::Response response;
  response.mutable_restored()->set_generation(request.generation());
  SendResponse(conn, response);
}

}  // namespace supermachine::agent::rpc
