// File: guest-agent/workload/launch_source.h
// Where the launch config comes from at boot: `supermachine.launch=<base64 JSON>` on the kernel
// command line (small tests) wins over /.supermachine/launch.json in the boot root (the delta
// disk bake makes). Neither present means "no workload": the agent only reports init.
#pragma once

#include <optional>
#include <string>

#include "guest-agent/workload/launch_config.h"

namespace supermachine::agent {

inline constexpr char kLaunchConfigPath[] = "/.supermachine/launch.json";

struct LoadedLaunchConfig {
  std::optional<LaunchConfig> config;  // Set when one was found and is valid.
  std::string source;                  // "cmdline" or the file path, when one was found.
  std::string error;                   // Found but unreadable or invalid.
};

LoadedLaunchConfig LoadLaunchConfig(const std::string& cmdline_path = "/proc/cmdline",
                                    const std::string& file_path = kLaunchConfigPath);

}  // namespace supermachine::agent
