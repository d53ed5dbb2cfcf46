// File: cgroup.cc
// cgroup v2 files written and read with plain open/write: each limit file takes one line.
#include "worker/jail/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::jail {
namespace {

absl::Status WriteFile(const std::string& path, const std::string& value) {
  // No O_CREAT: in a real cgroup the kernel provides the file, and a missing one means the
  // controller is not enabled, which must be an error rather than a silently ignored limit.
  base::UniqueFd fd(open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd.valid()) {
    return base::ErrnoToStatus(
        errno, absl::StrCat("cgroup file ", path,
                            " (is the controller enabled in the parent's cgroup.subtree_control?)"));
  }
  if (write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return base::ErrnoToStatus(errno, absl::StrCat("write '", value, "' to ", path));
  }
  return absl::OkStatus();
}

}  // namespace

CgroupLimits LimitsForVm(uint32_t mem_mib, uint32_t vcpus) {
  return CgroupLimits{
      .memory_max_bytes = (static_cast<uint64_t>(mem_mib) << 20) + kVmmOverheadBytes,
      .cpus = vcpus,
      .pids_max = kPidsMax + vcpus,
  };
}

absl::Status CreateWorkerCgroup(const std::string& dir, const CgroupLimits& limits) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return base::ErrnoToStatus(errno, absl::StrCat("create cgroup ", dir));
  }
  if (limits.memory_max_bytes != 0) {
    SM_RETURN_IF_ERROR(WriteFile(dir + "/memory.max", absl::StrCat(limits.memory_max_bytes)));
    // No swap: a worker over its limit is OOM-killed (and reported), not slowed to a crawl.
    // Optional: a host without swap accounting has no such file.
    if (access((dir + "/memory.swap.max").c_str(), F_OK) == 0) {
      SM_RETURN_IF_ERROR(WriteFile(dir + "/memory.swap.max", "0"));
    }
  }
  if (limits.cpus != 0) {
    SM_RETURN_IF_ERROR(WriteFile(
        dir + "/cpu.max", absl::StrCat(limits.cpus * kCpuPeriodUs, " ", kCpuPeriodUs)));
  }
  if (limits.pids_max != 0) {
    SM_RETURN_IF_ERROR(WriteFile(dir + "/pids.max", absl::StrCat(limits.pids_max)));
  }
  return absl::OkStatus();
}

absl::Status JoinCgroup(const std::string& dir, int pid) {
  return WriteFile(dir + "/cgroup.procs", absl::StrCat(pid));
}

std::optional<uint64_t> OomKillCount(const std::string& dir) {
  std::ifstream in(dir + "/memory.events");
  if (!in) {
    return std::nullopt;
  }
  std::string key;
  uint64_t value;
  while (in >> key >> value) {
    if (key == "oom_kill") {
      return value;
    }
  }
  return std::nullopt;
}

absl::Status RemoveCgroup(const std::string& dir) {
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    return base::ErrnoToStatus(errno, absl::StrCat("remove cgroup ", dir));
  }
  return absl::OkStatus();
}

}  // namespace supermachine::jail
