// File: guest-agent/init/mounts.h
// The pseudo filesystems PID 1 mounts before anything else (/proc, /sys, /dev).
#pragma once

#include <string>
#include <vector>

namespace supermachine::agent {

// Mounts proc on /proc, sysfs on /sys and devtmpfs on /dev, creating the mount points if
// needed. A target that is already mounted (EBUSY) counts as done. Returns one message per
// failure ("mount devtmpfs on /dev: No such device"); empty means all mounted.
std::vector<std::string> MountEssentialFilesystems();

}  // namespace supermachine::agent
