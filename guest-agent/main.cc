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
  // Everything below (mounting over /proc, resetting the machine) is only right for the init of
  // a guest; run by mistake on a host as root it would reboot the host.
  if (getpid() != 1) {
    std::fprintf(stderr, "%sonly runs as PID 1 of a guest (this is pid %d); not doing anything\n",
                 kPrefix, static_cast<int>(getpid()));
    return 2;
  }
  std::vector<std::string> errors = agent::MountEssentialFilesystems();
  agent::AttachConsole();
  for (const std::string& e : errors) {
    std::fprintf(stderr, "%serror: %s\n", kPrefix, e.c_str());
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
