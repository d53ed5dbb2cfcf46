// File: guest-agent/main.cc
// guest-agent: PID 1 of every supermachine guest (docs/guest-boot.md). Mounts the pseudo
// filesystems, reads the launch config, assembles the container root, starts the reaper and
// the vsock server, then the workload, and from then on forwards signals to the workload. PID 1
// never returns. Without a launch config it only reports init and ends the VM (kernel and VMM
// boot checks rely on that).
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "guest-agent/init/console.h"
#include "guest-agent/init/mounts.h"
#include "guest-agent/init/power.h"
#include "guest-agent/init/uptime.h"
#include "guest-agent/process/reaper.h"
#include "guest-agent/rootfs/assemble.h"
#include "guest-agent/rootfs/network.h"
#include "guest-agent/workload/launch_source.h"
#include "guest-agent/workload/supervisor.h"
#ifdef SM_AGENT_HAS_RPC
#include "guest-agent/protocol/frame.h"
#include "guest-agent/rpc/server.h"
#endif

namespace {

namespace agent = supermachine::agent;
constexpr char kPrefix[] = "supermachine-guest-agent: ";
// Signals PID 1 takes synchronously and forwards to the workload (tini's habit: all but
// SIGCHLD, which is the reaper's business, and the ones a process cannot catch).
constexpr std::array<int, 7> kForwarded = {SIGTERM, SIGINT, SIGHUP, SIGQUIT,
                                           SIGUSR1, SIGUSR2, SIGWINCH};

// Guest time since boot (kvm-clock), in microseconds.
int64_t BootUs() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

[[noreturn]] void Fatal(const std::string& what) {
  std::fprintf(stderr, "%sfatal: %s\n", kPrefix, what.c_str());
  std::fflush(stderr);
  agent::EndVm();
  // reboot() failed: PID 1 exiting panics the kernel, and `panic=-1` resets right away.
  std::perror("supermachine-guest-agent: reboot");
  _exit(1);
}

// Blocks the forwarded signals in PID 1 before any thread exists, so every thread inherits
// the mask and they queue for sigwaitinfo(). The kernel drops signals to init whose action is
// SIG_DFL unless they are blocked; the empty handler keeps that true even while unblocked.
sigset_t BlockForwardedSignals() {
  sigset_t set;
  sigemptyset(&set);
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  for (int sig : kForwarded) {
    sigaddset(&set, sig);
    sigaction(sig, &sa, nullptr);
  }
  sigprocmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace

int main() {
  const int64_t start_us = BootUs();
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
  agent::LoadedLaunchConfig launch = agent::LoadLaunchConfig();
  if (!launch.config && launch.error.empty()) {
    // No workload: the marker hosts and boot tests wait for, with the guest's boot-to-init time.
    std::optional<double> uptime = agent::ReadUptimeSeconds();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    std::printf("%sinit %s uptime_s=%.3f cpus=%ld\n", kPrefix, errors.empty() ? "ok" : "failed",
                uptime.value_or(-1.0), cpus);
    std::fflush(stdout);
    agent::EndVm();
    std::perror("supermachine-guest-agent: reboot");
    return 1;
  }
  if (!errors.empty()) {
    Fatal("pseudo filesystems could not be mounted (see above)");
  }
  if (!launch.error.empty()) {
    Fatal("launch config " + launch.error);
  }
  const agent::LaunchConfig& config = *launch.config;
  const sigset_t forwarded = BlockForwardedSignals();

  const int64_t assemble_start_us = BootUs();
  if (std::string err = agent::AssembleRoot(config); !err.empty()) {
    Fatal("root: " + err);
  }
  const int64_t assemble_us = BootUs() - assemble_start_us;
  if (!config.hostname.empty()) {
    if (std::string err = agent::SetHostname(config.hostname); !err.empty()) {
      Fatal(err);
    }
  }
  if (std::string err = agent::BringUpLoopback(); !err.empty()) {
    Fatal(err);
  }

  agent::Reaper reaper;
  agent::Supervisor supervisor(&reaper, config);
  std::string listening = "none (agent built without rpc/)";
#ifdef SM_AGENT_HAS_RPC
  namespace rpc = supermachine::agent::rpc;
  int listen_fd = rpc::ListenVsock(supermachine::agent::protocol::kAgentPort);
  if (listen_fd < 0) {
    Fatal("listen on vsock port " + std::to_string(supermachine::agent::protocol::kAgentPort) +
          ": " + std::strerror(-listen_fd));
  }
  rpc::Server server(rpc::ServerOptions{.listen_fd = listen_fd,
                                        .workload = &supervisor,
                                        .reaper = &reaper,
                                        .agent_version = SM_AGENT_VERSION});
  std::thread server_thread([&server] { server.Run(); });
  listening = "vsock:" + std::to_string(supermachine::agent::protocol::kAgentPort);
#endif
  const int64_t ready_us = BootUs();
  std::printf("%sready uptime_ms=%.3f startup_ms=%.3f root_ms=%.3f listen=%s config=%s\n",
              kPrefix, static_cast<double>(ready_us) / 1000.0,
              static_cast<double>(ready_us - start_us - assemble_us) / 1000.0,
              static_cast<double>(assemble_us) / 1000.0, listening.c_str(),
              launch.source.c_str());
  std::fflush(stdout);

  supervisor.Start();
  while (true) {
    siginfo_t info{};
    int sig = sigwaitinfo(&forwarded, &info);
    if (sig > 0) {
      supervisor.Forward(sig);
    }
  }
}
