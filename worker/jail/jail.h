// File: jail.h
// The worker's jail, after Firecracker's jailer but entered by the worker itself once its VM is
// built (all files open, passt spawned, sockets listening) and before the first guest
// instruction: new mount, IPC, UTS and network namespaces, pivot_root into a fresh tmpfs that
// holds only the bind mounts listed (at their host paths, so no path changes meaning), a
// pid-only /proc (hidepid=invisible,subset=pid: the snapshot reads /proc/self/pagemap), then an
// unprivileged uid/gid, no capabilities, no_new_privs, close-on-exec on every descriptor.
// The PID namespace cannot be entered this late (it needs a fork): a jailed worker forks into
// it first thing (pid_namespace.h).
//
// Entering after setup, not before exec as Firecracker's jailer does, means nothing has to be
// copied or linked into the jail: what the worker opened during setup stays open, and what it
// must still reach by path at run time is bound in. The network namespace is always new: passt
// was spawned before and talks over an inherited socketpair, and path-named Unix sockets (vsock
// host sockets) are found through the file system, not the network namespace.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace supermachine::jail {

struct BindMount {
  std::string path;  // Host path; appears at the same path inside the jail.
  bool read_only = true;
};

struct JailOptions {
  std::string jail_dir;  // Created if missing; a private tmpfs is mounted on it.
  std::vector<BindMount> binds;
  std::optional<uid_t> uid;  // Drop to these (both or neither); writable binds are chowned.
  std::optional<gid_t> gid;
  bool mount_proc = true;  // pid-only /proc, see above.
  bool new_net_ns = true;
};

// Must be called while the process has one thread (unshare and pivot_root act on the calling
// thread's file-system view only). Irreversible; on error the process is half-jailed and
// should exit.
absl::Status EnterJail(const JailOptions& options);

// Drops every capability (bounding, ambient, effective, permitted, inheritable), switches to
// uid/gid when given (supplementary groups cleared), sets no_new_privs. Part of EnterJail,
// exposed for tests.
absl::Status DropPrivileges(std::optional<uid_t> uid, std::optional<gid_t> gid);

// Marks every descriptor from 3 up close-on-exec (close_range), so nothing the worker holds
// leaks into a process it might still start.
absl::Status CloseOnExecAll();

}  // namespace supermachine::jail
