// File: guest-agent/process/users.h
// Resolves a container user spec ("", "name", "uid", "uid:gid", "name:group", and the mixed
// forms "uid:group", "name:gid") to the ids a process is started with, reading the image's
// /etc/passwd and /etc/group under `root_dir` (the rootfs; "/" in the guest, a temp dir in
// tests). Semantics follow Docker/OCI `USER`:
//   - ""           the same as "0": root.
//   - numeric ids  need no entry; a passwd entry for the uid still supplies name, primary gid
//                  (when no group is given) and HOME.
//   - names        must exist in passwd / group, else an error naming the file.
//   - groups       the primary gid first, then every /etc/group entry listing the user's name
//                  as a member (supplementary groups, as initgroups(3) would give).
//   - home         passwd's home directory; "/" when the uid has no entry.
// Used by exec (setgroups/setgid/setuid before execve) and write_file (owner), and by the
// workload supervisor for the container's main process.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace supermachine::agent {

struct ResolvedUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // Supplementary groups for setgroups(); includes gid.
  std::string name;           // passwd name; empty when the uid has no entry.
  std::string home = "/";     // For HOME.
};

struct UserResult {
  bool ok = false;
  std::string error;  // When !ok: what was not found / not valid, and where it was looked up.
  ResolvedUser user;
};

// Pure with respect to process state: reads two files, changes nothing.
UserResult ResolveUser(std::string_view spec, const std::string& root_dir = "/");

// Applies `user` to the calling process: setgroups, setgid, setuid, in that order (dropping
// uid first would forbid the others). Returns 0 or -errno. Meant for a forked child before
// execve: it makes raw syscalls only (no glibc set*id broadcast to other threads, which a
// forked child does not have), so it is async-signal-safe.
int ApplyUser(const ResolvedUser& user);

}  // namespace supermachine::agent
