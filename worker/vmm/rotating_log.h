// File: rotating_log.h
// RotatingLog: the guest console written to a file of bounded size. When the next byte would
// take the file past its limit, FILE is renamed to FILE.1 (replacing the older one) and a fresh
// FILE is started, so at most 2 × limit bytes of console are on disk and the newest output is
// always in FILE. `smctl logs` reads FILE.1 then FILE (daemon/vm/console_log_reader.h).
//
// Why a file sink of its own rather than logrotate: the worker holds the descriptor, so an
// outside rename would leave it writing to the renamed file; and copytruncate loses what was
// written between the copy and the truncate.
//
// Cost on the vCPU: the same single write(2) per byte as the plain file console, plus a rename
// and an open once per `limit` bytes. A failed write (disk full, I/O error) drops the byte and
// counts it; nothing here ends the VM. Rotation works by the directory descriptor opened at
// start-up, so it keeps working after the worker's jail hides the path and under its seccomp
// filter (renameat, openat are allowed: worker/jail/seccomp_policy.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/base/unique_fd.h"
#include "worker/devices/legacy/serial.h"

namespace supermachine::vmm {

// What follows FILE for the previous file; daemon/vm/console_log_reader.cc relies on it.
inline constexpr absl::string_view kRotatedSuffix = ".1";

struct RotatingLogStats {
  uint64_t written = 0;      // bytes that reached a file
  uint64_t dropped = 0;      // bytes lost to write or open errors
  uint64_t rotations = 0;    // FILE → FILE.1 renames
  uint64_t rotate_errors = 0;  // rotations that failed (FILE was truncated instead, see .cc)
};

class RotatingLog final : public devices::SerialOutput {
 public:
  // Creates (truncates) `path` and removes a stale `path`.1 of an earlier run, so the pair is
  // always this worker's console. `max_bytes` 0: never rotate (unbounded, as before). A path
  // that is not a regular file (/dev/null, a FIFO, a tty) is written but never rotated.
  static absl::StatusOr<std::unique_ptr<RotatingLog>> Open(const std::string& path,
                                                          uint64_t max_bytes);

  // devices::SerialOutput: one console byte (called on a vCPU thread under the UART's lock).
  void Write(uint8_t byte) override;
  // Several bytes, rotating between them where the limit falls (tests and future callers).
  void Write(absl::string_view bytes);

  RotatingLogStats stats() const;
  // "written=.. dropped=.. rotations=.. rotate_errors=..", for worker.log at exit.
  std::string StatsLine() const;

 private:
  RotatingLog(base::UniqueFd dir, std::string name, base::UniqueFd file, uint64_t max_bytes)
      : dir_(std::move(dir)), name_(std::move(name)), file_(std::move(file)),
        max_bytes_(max_bytes) {}
  void RotateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes what fits in the current file; returns how many bytes of `bytes` it consumed
  // (written or dropped).
  size_t WriteSomeLocked(absl::string_view bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const base::UniqueFd dir_;  // O_PATH descriptor of FILE's directory.
  const std::string name_;    // FILE's name inside dir_.
  mutable std::mutex mu_;
  base::UniqueFd file_ ABSL_GUARDED_BY(mu_);  // Invalid after a failed re-open.
  uint64_t size_ ABSL_GUARDED_BY(mu_) = 0;    // Bytes in the current file.
  const uint64_t max_bytes_;
  RotatingLogStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace supermachine::vmm
