// File: worker_booter.h
// The real VmBooter (baker.h): spawns supermachine-worker with the bake's disks, waits for the
// guest agent and the request's readiness over vsock, snapshots through the worker's control
// socket, and stops the worker. Sockets live in a short /tmp dir (the vsock path is limited to
// 96 bytes); the console goes to <work_dir>/console.log, whose tail explains a failure.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "daemon/bake/baker.h"

namespace supermachine::bake {

// Guest kernel command line for a bake (docs/guest-boot.md).
inline constexpr char kBakeKernelCmdline[] =
    "console=ttyS0 reboot=t panic=-1 quiet root=/dev/vda rootfstype=squashfs ro "
    "init=/.supermachine/agent";

// A bake worker's sockets live in mkdtemp(<this>XXXXXX); the startup sweep of orphaned bake
// workers (orphan_sweep.h) removes only dirs with this prefix.
inline constexpr char kBakeSocketDirPrefix[] = "/tmp/smbake-";

// `balloon`: boot with --balloon, so the snapshot (and every VM restored from it) carries a
// virtio-balloon with free page reporting (docs/balloon.md). `console_max_bytes`: the
// worker's --serial-max-bytes for console.log (rotated to console.log.1; 0 = unbounded).
// `jail`: the worker runs jailed (--jail-dir in the socket dir, the snapshot's temp dir shared
// into it), as the daemon's restored workers are when it runs as root.
std::shared_ptr<VmBooter> MakeWorkerBooter(std::string worker_path, std::string kernel_path,
                                           bool balloon = false,
                                           uint64_t console_max_bytes = uint64_t{8} << 20,
                                           bool jail = false);

// The last `lines` lines of the file at `path` (reads at most the last 64 KiB; "" if missing).
std::string FileTail(const std::string& path, size_t lines);

}  // namespace supermachine::bake
