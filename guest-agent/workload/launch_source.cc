// File: guest-agent/workload/launch_source.cc
// Reads the kernel command line, then the delta's launch.json.
#include "guest-agent/workload/launch_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace supermachine::agent {
namespace {

// A launch config is small; anything bigger is a mistake, not something to allocate for.
constexpr size_t kMaxConfigBytes = 1 << 20;

// Reads a whole (small) file. nullopt with errno set when it cannot be opened or read.
std::optional<std::string> ReadSmallFile(const std::string& path, std::string* error) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) {
      *error = "open " + path + ": " + std::strerror(errno);
    }
    return std::nullopt;
  }
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      *error = "read " + path + ": " + std::strerror(errno);
      close(fd);
      return std::nullopt;
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxConfigBytes) {
      *error = path + ": larger than 1 MiB";
      close(fd);
      return std::nullopt;
    }
  }
  close(fd);
  return out;
}

void Parse(const std::string& text, LoadedLaunchConfig* out) {
  LaunchConfigResult r = ParseLaunchConfig(text);
  if (!r.config) {
    out->error = out->source + ": " + r.error;
    return;
  }
  out->config = std::move(r.config);
}

}  // namespace

LoadedLaunchConfig LoadLaunchConfig(const std::string& cmdline_path,
                                    const std::string& file_path) {
  LoadedLaunchConfig out;
  std::string error;
  if (std::optional<std::string> cmdline = ReadSmallFile(cmdline_path, &error)) {
    std::optional<std::string> inline_json = LaunchConfigFromCmdline(*cmdline, &error);
    if (inline_json) {
      out.source = "cmdline";
      if (!error.empty()) {
        out.error = error;
        return out;
      }
      Parse(*inline_json, &out);
      return out;
    }
  }
  error.clear();  // An unreadable /proc/cmdline only means there is no inline config.
  std::optional<std::string> text = ReadSmallFile(file_path, &error);
  if (!text) {
    if (!error.empty()) {
      out.source = file_path;
      out.error = error;
    }
    return out;
  }
  out.source = file_path;
  Parse(*text, &out);
  return out;
}

}  // namespace supermachine::agent
