// File: guest-agent/main.cc
// guest-agent: PID 1 of every supermachine guest. For now it brings the guest up (pseudo
// filesystems, console), reports readiness with a marker line, and ends the VM.
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "guest-agent/init/console.h"
#include "guest-agent/init/mounts.h"
#include "guest-agent/init/power.h"
#include "guest-agent/init/uptime.h"

namespace {

constexpr char kPrefix[] = "supermachine-guest-agent: ";

}  // namespace

int main() {
  namespace agent = supermachine::agent;
  std::vector<std::string> errors = agent::MountEssentialFilesystems();
  agent::AttachConsole();
  for (const std::string& e : errors) {
    std::fprintf(stderr, "%serror: %s\n", kPrefix, e.c_str());
  }
  if (getpid() != 1) {
    std::fprintf(stderr, "%swarning: not running as PID 1 (pid %d)\n", kPrefix,
                 static_cast<int>(getpid()));
  }
  // The marker hosts and tests wait for; the uptime is the guest's own boot-to-init time.
  std::optional<double> uptime = agent::ReadUptimeSeconds();
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  std::printf("%sinit %s uptime_s=%.3f cpus=%ld\n", kPrefix, errors.empty() ? "ok" : "failed",
              uptime.value_or(-1.0), cpus);
  std::fflush(stdout);
  agent::EndVm();
  // reboot() failed: PID 1 exiting panics the kernel, and `panic=-1` resets right away.
  std::perror("supermachine-guest-agent: reboot");
  return 1;
}
