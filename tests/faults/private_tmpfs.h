// File: private_tmpfs.h
// Fault-injection support: a size-limited tmpfs (a disk that fills up on demand) mounted in a
// private mount namespace of the calling thread, so nothing the test mounts is visible to, or
// left behind in, the host's namespace even if the test dies. Needs CAP_SYS_ADMIN (CI runs the
// fault tests as root); without it Mount fails with the reason, it never silently degrades.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace supermachine::faults {

class PrivateTmpfs {
 public:
  // unshare(CLONE_NEWNS) for this thread (threads it starts later inherit the namespace),
  // makes every mount in it private, creates `dir` and mounts a tmpfs of `bytes` there.
  static absl::StatusOr<std::unique_ptr<PrivateTmpfs>> Mount(const std::string& dir,
                                                             uint64_t bytes);
  ~PrivateTmpfs();  // lazy unmount (the namespace dies with the process anyway)
  PrivateTmpfs(const PrivateTmpfs&) = delete;
  PrivateTmpfs& operator=(const PrivateTmpfs&) = delete;

  // Remounts with a new size limit: "free space" for the retry half of a disk-full case.
  absl::Status Resize(uint64_t bytes);
  const std::string& path() const { return path_; }

 private:
  explicit PrivateTmpfs(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace supermachine::faults
