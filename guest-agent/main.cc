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
#include "guest-agent/protocol/frame.h"
#include "guest-agent/rootfs/assemble.h"
#include "guest-agent/net/configure.h"
#include "guest-agent/rootfs/network.h"
#include "guest-agent/workload/launch_source.h"
#include "guest-agent/rpc/server.h"
#include "guest-agent/workload/supervisor.h"

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
  const int64_t mounted_us = BootUs();
  for (const std::string& e : errors) {
    std::fprintf(stderr, "%serror: %s\n", kPrefix, e.c_str());
  }
  agent::LoadedLaunchConfig launch = agent::LoadLaunchConfig();
  const int64_t config_us = BootUs();
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
  // eth0 from the worker's sm.net= (docs/networking.md); a failure leaves the workload
  // without network but running, and says why on the console.
  if (std::string err = agent::net::ApplyFromKernelCmdline(false, "/"); !err.empty()) {
    std::fprintf(stderr, "%serror: network: %s\n", kPrefix, err.c_str());
  }

  const int64_t net_done_us = BootUs();

  agent::Reaper reaper;
  // A parked workload (launch config "start": "restore") mounts its volumes when it starts.
  agent::Supervisor supervisor(
      &reaper, config, {.before_parked_start = [&config] { return agent::MountVolumes(config); }});
  namespace rpc = supermachine::agent::rpc;
  const uint32_t port = supermachine::agent::protocol::kAgentPort;
  // Without a listener the host cannot reach the agent, but the workload still runs and its
  // exit still shows on the console (a VM without a vsock device, e.g. a plain boot check).
  int listen_fd = rpc::ListenVsock(port);
  std::string listening = "vsock:" + std::to_string(port);
  std::optional<rpc::Server> server;
  std::thread server_thread;
  if (listen_fd < 0) {
    std::fprintf(stderr, "%serror: listen on vsock port %u: %s (no host control channel)\n",
                 kPrefix, port, std::strerror(-listen_fd));
    listening = "none";
  } else {
    server.emplace(rpc::ServerOptions{.listen_fd = listen_fd,
                                      .workload = &supervisor,
                                      .reaper = &reaper,
                                      .agent_version = SM_AGENT_VERSION});
    server_thread = std::thread([&server] { server->Run(); });
  }
  // startup_ms is PID 1's own cost up to a listening server (budget: 5 ms of guest time);
  // root_ms, mounting the disks, is excluded from it and reported on its own.
  const int64_t ready_us = BootUs();
  auto ms = [](int64_t us) { return static_cast<double>(us) / 1000.0; };
  std::printf("%sready uptime_ms=%.3f startup_ms=%.3f root_ms=%.3f (pseudo_fs_ms=%.3f "
              "config_ms=%.3f net_ms=%.3f listen_ms=%.3f) listen=%s config=%s\n",
              kPrefix, ms(ready_us), ms(ready_us - start_us - assemble_us), ms(assemble_us),
              ms(mounted_us - start_us), ms(config_us - mounted_us),
              ms(net_done_us - assemble_start_us - assemble_us), ms(ready_us - net_done_us),
              listening.c_str(), launch.source.c_str());
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
