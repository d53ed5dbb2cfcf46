// File: guest-agent/rootfs/assemble.h
// Builds the container root and makes it `/`: mounts each layer disk (squashfs), stacks them
// under the delta (the boot root) with overlayfs and a writable upper, moves the pseudo
// filesystems over, pivot_root()s, and mounts volumes. docs/guest-boot.md is the contract.
#pragma once

#include <string>

#include "guest-agent/workload/launch_config.h"

namespace supermachine::agent {

struct RootfsPaths {
  std::string sys_block = "/sys/block";  // Where disk serials are read.
  // Staging area (layer mounts, upper, new root) on the /run tmpfs; must be under /run, which
  // is carried into the new root. Emptied and removed after the pivot.
  std::string stage = "/run/supermachine/rootfs";
};

// Expects MountEssentialFilesystems() to have run (/proc, /sys, /dev, /tmp, /run mounted on
// the boot root). On success `/` is the overlay and returns ""; otherwise a message naming the
// step, disk and errno. After a failure the guest is left as it was at the failed step.
// With config.start_on_restore the volumes are left out (MountVolumes mounts them later).
std::string AssembleRoot(const LaunchConfig& config, const RootfsPaths& paths = {});

// Mounts config.volumes (ext4, by virtio serial) at their paths in the current root, dropping
// each disk's block cache first. For a parked workload, right before it starts.
std::string MountVolumes(const LaunchConfig& config, const RootfsPaths& paths = {});

}  // namespace supermachine::agent
