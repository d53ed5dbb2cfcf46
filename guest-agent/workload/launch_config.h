// File: guest-agent/workload/launch_config.h
// The launch config: what the host (bake) tells the agent to assemble and run. It arrives as
// JSON, in the delta disk at /.supermachine/launch.json or inline on the kernel command line
// (docs/guest-boot.md has the field table). Parsing is strict: unknown keys and ill-typed values
// are errors naming the key, so a host/agent version skew shows up at boot, not as a silently
// ignored setting.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace supermachine::agent {

struct VolumeMount {
  std::string disk;  // virtio-blk serial of the volume disk (ext4).
  std::string path;  // Absolute mount point in the container root.
};

struct LaunchConfig {
  std::vector<std::string> argv;  // Entrypoint + cmd, resolved by the host; never empty.
  std::vector<std::string> env;   // "KEY=VALUE".
  std::string cwd = "/";
  std::string user;               // "", "name", "uid", "name:group", "uid:gid"; "" = root.
  std::string hostname;           // "" = leave the kernel's default.
  // Disk ids (virtio-blk serials) of the image's layers, lowest first (OCI manifest order).
  std::vector<std::string> layers;
  // Writable upper layer: empty = tmpfs; otherwise the disk id of an ext4 disk.
  std::string upper_disk;
  std::vector<VolumeMount> volumes;
  // After the workload exits: false = keep the VM up (the host asks through the agent);
  // true = power off once the exit is reported on the console.
  bool poweroff_on_exit = false;
  // Key "start": "boot" (default) starts the workload and mounts the volumes at boot;
  // "restore" parks: the root is assembled without the volumes and nothing runs until the host
  // sends `restored` (a bake with readiness "parked" snapshots in that state, so every restore
  // mounts the volumes it is given and starts the workload fresh).
  bool start_on_restore = false;
};

struct LaunchConfigResult {
  std::optional<LaunchConfig> config;  // Set on success.
  std::string error;                   // Set on failure: "launch config: key \"env\": ...".
};

// Parses and validates one launch config document.
LaunchConfigResult ParseLaunchConfig(std::string_view json);

// The value of `supermachine.launch=` in a kernel command line (as /proc/cmdline), base64
// (standard alphabet, padding optional) decoded. nullopt when the parameter is absent; an
// empty string with `*error` set when it is present but not valid base64.
std::optional<std::string> LaunchConfigFromCmdline(std::string_view cmdline, std::string* error);

}  // namespace supermachine::agent
