// File: guest-agent/init/uptime.cc
// Reads /proc/uptime.
#include "guest-agent/init/uptime.h"

#include <cstdio>

namespace supermachine::agent {

std::optional<double> ReadUptimeSeconds() {
  std::FILE* f = std::fopen("/proc/uptime", "re");
  if (f == nullptr) {
    return std::nullopt;
  }
  double seconds = 0;
  int n = std::fscanf(f, "%lf", &seconds);
  std::fclose(f);
  if (n != 1) {
    return std::nullopt;
  }
  return seconds;
}

}  // namespace supermachine::agent
