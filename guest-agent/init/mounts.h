// File: guest-agent/init/mounts.h
// The pseudo filesystems PID 1 mounts before anything else (/proc, /sys, /dev, /dev/pts,
// /dev/shm, /tmp, /run).
#pragma once

#include <string>
#include <vector>

namespace supermachine::agent {

// Mounts proc on /proc, sysfs on /sys, devtmpfs on /dev, devpts on /dev/pts and tmpfs on
// /dev/shm, /tmp and /run, creating the mount points if needed (the boot root must already
// have /proc, /sys, /dev, /tmp and /run when it is read-only: docs/guest-boot.md). A target
// that is already mounted (EBUSY) counts as done. Returns one message per failure
// ("mount devtmpfs on /dev: No such device"); empty means all mounted.
std::vector<std::string> MountEssentialFilesystems();

}  // namespace supermachine::agent
