// File: run.cc
// `smctl run [-d] [-p HOST:GUEST]... [-e K=V]... [--name N] IMAGE|SNAPSHOT [-- CMD...]`:
// acquire a VM (the daemon bakes IMAGE first when it is not a snapshot and it can), then
//  - with -d: print the VM id and its endpoints and return (the VM keeps running);
//  - with CMD: run CMD in the VM (env from -e), exit with its status, release the VM;
//  - otherwise: stream the workload's console until Ctrl-C, then release the VM.
// Each step is the daemon's; smctl prints the daemon's message when a step is refused.
// -v NAME:/guest/path binds a named volume to the snapshot's volume slot there (docs/volumes.md).
// --restart and --health-* ask the daemon to supervise the VM (docs/supervision.md); they
// matter for -d, since without it smctl releases the VM when it is done.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/exit_codes.h"
#include "cli/request_flags.h"

namespace supermachine::cli {
namespace {

struct RunOptions {
  bool detach = false;
  std::vector<std::string> ports;
  std::vector<std::string> env;
  std::vector<std::string> volumes;
  std::string name;
  std::string image;
  std::vector<std::string> cmd;
  std::string restart;
  std::string health_cmd;
  std::string health_interval;
  std::string health_timeout;
  std::string health_start_period;
  uint32_t health_retries = 0;
};

// The --health-* flags onto the request; a --health-* flag without --health-cmd is refused.
grpc::Status HealthFlags(const RunOptions& o, v1::AcquireRequest* req) {
  const bool tuned = !o.health_interval.empty() || !o.health_timeout.empty() ||
                     !o.health_start_period.empty() || o.health_retries != 0;
  if (o.health_cmd.empty()) {
    if (tuned) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "--health-interval/--health-timeout/--health-retries/"
                          "--health-start-period need --health-cmd CMD");
    }
    return grpc::Status::OK;
  }
  v1::HealthCheck* h = req->mutable_health_check();
  // As Docker's CMD-SHELL form: the command line runs under the guest's /bin/sh.
  h->add_cmd("/bin/sh");
  h->add_cmd("-c");
  h->add_cmd(o.health_cmd);
  h->set_retries(o.health_retries);
  uint32_t ms = 0;
  if (!o.health_interval.empty()) {
    if (grpc::Status st = ParseDurationFlag("--health-interval", o.health_interval, &ms); !st.ok()) {
      return st;
    }
    h->set_interval_ms(ms);
  }
  if (!o.health_timeout.empty()) {
    if (grpc::Status st = ParseDurationFlag("--health-timeout", o.health_timeout, &ms); !st.ok()) {
      return st;
    }
    h->set_timeout_ms(ms);
  }
  if (!o.health_start_period.empty()) {
    if (grpc::Status st = ParseDurationFlag("--health-start-period", o.health_start_period, &ms);
        !st.ok()) {
      return st;
    }
    h->set_start_period_ms(ms);
  }
  return grpc::Status::OK;
}

void PrintEndpoints(const v1::VM& vm) {
  std::printf("%s\n", vm.id().c_str());
  std::fprintf(stderr, "vsock: %s\n", vm.vsock_socket().c_str());
  for (const v1::PortForward& p : vm.ports()) {
    std::fprintf(stderr, "port: %s:%u -> guest %u\n", p.host_address().c_str(), p.host_port(),
                 p.guest_port());
  }
}

// A host port that something already listens on fails the Acquire only after the daemon has
// baked and restored (seconds to minutes); the daemon shares this host (its socket is a local
// Unix socket), so a trial bind here tells the user at once. Other bind errors (e.g. EACCES
// for a port below 1024 when smctl is not root but the daemon is) are left to the daemon.
grpc::Status CheckHostPortFree(const v1::PortForward& p) {
  if (p.host_port() == 0) {
    return grpc::Status::OK;
  }
  const std::string address = p.host_address().empty() ? "127.0.0.1" : p.host_address();
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(p.host_port()));
  if (::inet_pton(AF_INET, address.c_str(), &sin.sin_addr) != 1) {
    return grpc::Status::OK;  // the daemon names the bad address
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return grpc::Status::OK;
  }
  int one = 1;
  // As the daemon's forwarder binds: TIME_WAIT leftovers do not count as "in use".
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&sin), sizeof(sin));
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err == EADDRINUSE) {
    const std::string port = std::to_string(p.host_port());
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        "host port " + address + ":" + port + " is already in use (`ss -ltnp 'sport = :" + port +
            "'` shows by whom): pick another with -p HOST:" + std::to_string(p.guest_port()) +
            ", or -p 0:" + std::to_string(p.guest_port()) + " for a free one");
  }
  return grpc::Status::OK;
}

// NOT_FOUND from run: the argument was neither a snapshot nor an image the daemon could find.
// The daemon names what it looked for; this adds what IMAGE may be.
grpc::Status ExplainNotFound(const grpc::Status& st) {
  if (st.error_code() != grpc::StatusCode::NOT_FOUND) {
    return st;
  }
  return grpc::Status(st.error_code(),
                      st.error_message() +
                          "\n  IMAGE is a snapshot name (`smctl images`) or an image ref: "
                          "NAME[:TAG] from a registry (docker.io/library/nginx:1.27), "
                          "oci-layout:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE");
}

// Releases the VM when SIGINT/SIGTERM arrives (Ctrl-C), from its own thread: the VM's end
// then ends the log stream or the exec in the main thread. The signals are blocked before
// any gRPC thread exists, so only this thread takes them.
class ReleaseOnSignal {
 public:
  ReleaseOnSignal() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);  // our own wake-up at the end
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  void Arm(Client* client, const std::string& vm_id) {
    thread_ = std::thread([this, client, vm_id] {
      int sig = 0;
      sigwait(&set_, &sig);
      if (sig == SIGUSR1) {
        return;
      }
      interrupted_ = true;
      std::fprintf(stderr, "smctl: releasing %s\n", vm_id.c_str());
      v1::ReleaseRequest rel;
      rel.set_vm_id(vm_id);
      v1::ReleaseResponse resp;
      (void)client->stub().Release(client->UnaryContext().get(), rel, &resp);
    });
  }
  ~ReleaseOnSignal() {
    if (thread_.joinable()) {
      pthread_kill(thread_.native_handle(), SIGUSR1);
      thread_.join();
    }
  }
  bool interrupted() const { return interrupted_.load(); }

 private:
  sigset_t set_;
  std::atomic<bool> interrupted_{false};
  std::thread thread_;
};

int Run(const RunOptions& o, const GlobalOptions& globals) {
  v1::AcquireRequest req;
  for (const std::string& p : o.ports) {
    v1::PortForward* port = req.add_ports();
    grpc::Status st = ParsePortFlag(p, port);
    // Only a local daemon binds on this machine: with --host the ports are the remote host's,
    // and a port busy here says nothing about them.
    if (st.ok() && !IsRemote(globals)) {
      st = CheckHostPortFree(*port);
    }
    if (!st.ok()) {
      return ReportError(st);
    }
  }
  for (const std::string& e : o.env) {
    grpc::Status st = CheckEnvFlag(e);
    if (!st.ok()) {
      return ReportError(st);
    }
  }
  if (!o.env.empty() && o.cmd.empty()) {
    return ReportError(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        "-e applies to the command after --; the workload's environment is fixed when the "
        "snapshot is baked (smctl bake --env K=V IMAGE)"));
  }
  req.set_name(o.name);
  req.set_snapshot(o.image);
  for (const std::string& v : o.volumes) {
    req.add_volumes(v);  // NAME:/guest/path; the daemon checks it against the snapshot's slots
  }
  req.set_restart_policy(o.restart);
  if (grpc::Status st = HealthFlags(o, &req); !st.ok()) {
    return ReportError(st);
  }
  std::unique_ptr<ReleaseOnSignal> on_signal;
  if (!o.detach) {
    on_signal = std::make_unique<ReleaseOnSignal>();
  }
  std::unique_ptr<Client> client;
  grpc::Status st = Client::Connect(globals, &client);
  if (!st.ok()) {
    return ReportError(st);
  }
  v1::AcquireResponse resp;
  // Acquire may bake or restore first; the daemon bounds it (its acquire_timeout), not smctl's
  // short RPC deadline.
  st = client->Explain(client->stub().Acquire(client->StreamContext().get(), req, &resp));
  if (!st.ok()) {
    return ReportError(ExplainNotFound(client->ExplainVmFailure(st)));
  }
  const std::string id = resp.vm().id();
  if (o.detach) {
    PrintEndpoints(resp.vm());
    return kExitOk;
  }
  on_signal->Arm(client.get(), id);
  int code = kExitOk;
  if (!o.cmd.empty()) {
    code = ExecInVm(*client, {.vm = id, .argv = o.cmd, .env = o.env});
  } else {
    PrintEndpoints(resp.vm());
    code = StreamLogs(*client, id, /*follow=*/true);
  }
  if (on_signal->interrupted()) {
    return 130;  // as a shell reports Ctrl-C
  }
  on_signal.reset();
  v1::ReleaseRequest rel;
  rel.set_vm_id(id);
  v1::ReleaseResponse rel_resp;
  st = client->Explain(client->stub().Release(client->UnaryContext().get(), rel, &rel_resp));
  if (!st.ok() && st.error_code() != grpc::StatusCode::NOT_FOUND) {
    ReportError(st);
  }
  return code;
}

}  // namespace

Verb AddRunCommand(CLI::App& root, const GlobalOptions& globals) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* app = root.add_subcommand(
      "run",
      "Acquire a VM from SNAPSHOT (or IMAGE, baked if needed); run CMD in it or follow its "
      "console, then release it (-d: leave it running)");
  app->add_flag("-d,--detach", o->detach, "Print the VM id and endpoints and leave it running");
  app->add_option("-p,--publish", o->ports, "Forward HOST_PORT:GUEST_PORT (or ADDR:HOST:GUEST); repeatable")
      ->allow_extra_args(false);
  app->add_option("-e,--env", o->env, "Set KEY=VALUE for CMD; repeatable")
      ->allow_extra_args(false);
  app->add_option("-v,--volume", o->volumes,
                  "Bind named volume NAME to the snapshot's volume at GUEST_PATH (NAME:GUEST_PATH; "
                  "made on first use, kept after the VM; see `smctl volume ls`); repeatable")
      ->allow_extra_args(false);
  app->add_option("--name", o->name, "Name for the VM");
  app->add_option("--restart", o->restart,
                  "Restart policy: no (default), on-failure[:MAX] or always; restarts are fresh "
                  "restores with the same name and ports, after a backoff of 100ms doubling to "
                  "30s (use with -d)");
  app->add_option("--health-cmd", o->health_cmd,
                  "Command (run with /bin/sh -c in the guest) whose exit 0 means healthy");
  app->add_option("--health-interval", o->health_interval,
                  "Time between health checks (default 30s), e.g. 10s, 1m30s");
  app->add_option("--health-timeout", o->health_timeout,
                  "A check running longer fails (default 30s)");
  app->add_option("--health-retries", o->health_retries,
                  "Consecutive failures that make the VM unhealthy (default 3)");
  app->add_option("--health-start-period", o->health_start_period,
                  "Failures this soon after the start do not count (default 0s)");
  app->add_option("IMAGE", o->image, "Snapshot name or image ref")->required();
  app->add_option("CMD", o->cmd, "Command to run in the VM (after --)");
  return {app, [o, &globals]() { return Run(*o, globals); }};
}

}  // namespace supermachine::cli
