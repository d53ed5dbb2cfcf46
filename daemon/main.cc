// File: main.cc
// supermachined entry point. Wires config → store → gRPC service on the Unix socket →
// Prometheus exporter, then waits for SIGTERM/SIGINT and shuts down within a deadline.
// Everything mutable lives in main's frame; the domains get what they need by reference.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#ifdef SM_HAVE_GRPC_REFLECTION
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#endif

#include "absl/strings/str_cat.h"
#include "daemon/api/service.h"
#include "daemon/api/bake_rpc.h"
#include "daemon/api/remote_listener.h"
#include "daemon/api/status_mapping.h"
#include "daemon/bake/baker.h"
#include "daemon/bake/orphan_sweep.h"
#include "daemon/config/daemon_config.h"
#include "daemon/config/log.h"
#include "daemon/config/worker_sandbox.h"
#include "daemon/metrics/metrics.h"
#include "daemon/service/inherited_listener.h"
#include "daemon/service/listen_fds.h"
#include "daemon/service/sd_notify.h"
#include "daemon/store/store.h"
#include "daemon/vm/reconcile.h"
#include "daemon/vm/store_journal.h"
#include "daemon/vm/vm_manager.h"
#include "daemon/vm/worker_launcher.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace {

using supermachine::base::ErrnoToStatus;
using supermachine::base::UniqueFd;
using supermachine::config::DaemonConfig;
using supermachine::config::Logger;

// How long in-flight RPCs get to finish on SIGTERM before they are cancelled. Short enough
// for systemd's default 90 s stop timeout, long enough for a store query.
constexpr auto kShutdownGrace = std::chrono::seconds(5);
// Bound on reconnecting a surviving worker's agent at startup (a loaded host, an emulated lab).
constexpr absl::Duration kAdoptTimeout = absl::Seconds(30);

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Creates `dir` and its parents. Only a leaf we create gets `mode`: an existing directory
// (say /tmp for a socket in /tmp) is the admin's and keeps its permissions.
absl::Status MakeDirs(const std::string& dir, mode_t mode) {
  if (dir.empty()) {
    return absl::OkStatus();
  }
  std::error_code ec;
  bool created = std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("create directory ", dir, ": ", ec.message()));
  }
  // create_directories uses 0777 & ~umask; set the leaf's mode explicitly.
  if (created && ::chmod(dir.c_str(), mode) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("chmod ", dir));
  }
  return absl::OkStatus();
}

// True when something accepts connections on the Unix socket at `path`.
bool SocketIsLive(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return false;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

// Makes sure we are the only daemon on `socket`: an flock on "<socket>.lock" (held for our
// lifetime through the returned fd) settles races between two starting daemons, and a live
// socket is never removed. A stale socket file (nothing listening) is removed.
absl::StatusOr<UniqueFd> ClaimSocket(const std::string& socket, Logger& log) {
  sockaddr_un probe;
  if (socket.size() >= sizeof(probe.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket path ", socket, " is ", socket.size(), " bytes; Unix sockets allow at most ",
        sizeof(probe.sun_path) - 1, ": choose a shorter --socket"));
  }
  const std::string lock_path = socket + ".lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock) {
    return ErrnoToStatus(errno, absl::StrCat("open lock file ", lock_path));
  }
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::AlreadyExistsError(absl::StrCat(
          "another supermachined is already running on ", socket, " (it holds ", lock_path,
          "); stop it first (systemctl stop supermachined) or pass a different --socket"));
    }
    return ErrnoToStatus(errno, absl::StrCat("lock ", lock_path));
  }
  struct stat st;
  if (::lstat(socket.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(
          socket, " exists and is not a socket; remove it or pass a different --socket"));
    }
    if (SocketIsLive(socket)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "another process is already serving on ", socket,
          "; stop it first (systemctl stop supermachined) or pass a different --socket"));
    }
    if (::unlink(socket.c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("remove stale socket ", socket));
    }
    log.Info("removed stale socket (nothing was listening)", {{"socket", socket}});
  }
  return lock;
}

absl::Status SetSocketAccess(const DaemonConfig& c) {
  if (!c.socket_group.empty()) {
    struct group gr;
    struct group* result = nullptr;
    char buf[4096];
    if (::getgrnam_r(c.socket_group.c_str(), &gr, buf, sizeof(buf), &result) != 0 ||
        result == nullptr) {
      return absl::NotFoundError(absl::StrCat("socket group '", c.socket_group,
                                              "' does not exist (create it with groupadd)"));
    }
    if (::chown(c.socket.c_str(), static_cast<uid_t>(-1), gr.gr_gid) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("chown ", c.socket, " to group ", c.socket_group));
    }
  }
  if (::chmod(c.socket.c_str(), c.socket_mode) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("chmod ", c.socket));
  }
  return absl::OkStatus();
}

// --worker-binary, else supermachine-worker next to our own binary (installed layout), else
// in the build tree's worker/ beside daemon/ (running from a build dir).
std::string FindWorkerBinary(const std::string& configured) {
  if (!configured.empty()) {
    return configured;
  }
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return "supermachine-worker";  // looked up in PATH
  }
  for (const auto& candidate : {self.parent_path() / "supermachine-worker",
                                self.parent_path().parent_path() / "worker" / "supermachine-worker"}) {
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
  }
  return "supermachine-worker";
}

supermachine::vm::PoolConfig ToPoolConfig(const supermachine::config::PoolSettings& s) {
  return {.min = s.min,
          .max = s.max,
          .idle_timeout = absl::Seconds(s.idle_timeout_s),
          .acquire_timeout = absl::Seconds(s.acquire_timeout_s)};
}

// Crash recovery (daemon/vm/reconcile.h): re-adopts the handed-out VMs whose worker survived
// the previous daemon, stops pooled ones, ends the rows of dead workers and kills unjournaled
// workers. Runs before the pools start and before the API serves, so nothing races it.
bool ReconcileVms(supermachine::store::Store& store, absl::Mutex& store_mu,
                  supermachine::vm::VmJournal& journal, supermachine::vm::WorkerLauncher& launcher,
                  supermachine::vm::VmManager& vms, const std::string& vm_dir, Logger& log) {
  absl::StatusOr<std::vector<supermachine::store::VmRecord>> rows;
  {
    absl::MutexLock lock(&store_mu);
    rows = store.ListVms(/*include_ended=*/false);
  }
  if (!rows.ok()) {
    log.Error("cannot list journaled VMs", {{"error", std::string(rows.status().message())}});
    return false;
  }
  supermachine::vm::ProcFs procs;
  supermachine::vm::ReconcileReport report = supermachine::vm::Reconcile(
      *rows, vm_dir,
      {.procs = &procs,
       .journal = &journal,
       .adopt = [&](const supermachine::store::VmRecord& row) -> absl::Status {
         absl::StatusOr<std::unique_ptr<supermachine::vm::VmInstance>> vm =
             launcher.Adopt(row, absl::Now() + kAdoptTimeout);
         if (!vm.ok()) {
           return vm.status();
         }
         absl::StatusOr<std::vector<std::string>> warnings = vms.Adopt(std::move(*vm), row);
         if (!warnings.ok()) {
           return warnings.status();
         }
         for (const std::string& w : *warnings) {
           log.Warn("re-adopted VM lost a port forward", {{"vm", row.id}, {"warning", w}});
         }
         log.Info("re-adopted VM", {{"vm", row.id}, {"name", row.name},
                                    {"pid", std::to_string(row.pid.value_or(0))}});
         return absl::OkStatus();
       }});
  for (const std::string& p : report.problems) {
    log.Warn("VM reconciliation", {{"problem", p}});
  }
  log.Info("VMs reconciled", {{"adopted", std::to_string(report.adopted.size())},
                              {"ended", std::to_string(report.ended.size())},
                              {"workers_killed", std::to_string(report.killed)}});
  return true;
}

int Fail(Logger& log, const std::string& msg, const absl::Status& st) {
  log.Error(msg, {{"error", std::string(st.message())}});
  return 1;
}

// The whole file, or "" when it cannot be read (a host without subordinate ids).
std::string ReadSmallFile(const char* path) {
  std::ifstream in(path);
  if (!in.is_open()) {
    return "";
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

supermachine::config::SandboxHost ReadSandboxHost() {
  supermachine::config::SandboxHost host;
  host.root = ::geteuid() == 0;
  // getpwnam_r: main has threads later; keep to the reentrant call everywhere.
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(supermachine::config::kSubidOwner, &pw, buf.data(), buf.size(), &found) == 0 &&
      found != nullptr) {
    host.owner_uid = found->pw_uid;
  }
  host.subuid = ReadSmallFile("/etc/subuid");
  host.subgid = ReadSmallFile("/etc/subgid");
  return host;
}

}  // namespace

int main(int argc, char** argv) {
  namespace cfg = supermachine::config;
  cfg::ParsedFlags parsed =
      cfg::ParseDaemonFlags(argc, argv, cfg::CurrentUserEnvironment(), SM_VERSION);
  if (parsed.exit_now) {
    std::fputs(parsed.output.c_str(), parsed.exit_code == 0 ? stdout : stderr);
    return parsed.exit_code;
  }
  const DaemonConfig& config = parsed.config;

  // Block the stop signals before any thread exists (gRPC, civetweb) so every thread inherits
  // the mask and only main's sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A client hanging up mid-write must be an error on that call, not the daemon's death.
  ::signal(SIGPIPE, SIG_IGN);

  Logger log(stderr, config.log_level);
  log.Info("starting", {{"version", SM_VERSION}, {"pid", std::to_string(::getpid())}});

  // The sandbox restored VMs' workers get: decided before anything is claimed, so a config
  // the host cannot honour fails the start instead of weakening the sandbox.
  absl::StatusOr<cfg::WorkerSandbox> sandbox =
      cfg::ResolveWorkerSandbox(config, ReadSandboxHost());
  if (!sandbox.ok()) {
    return Fail(log, "cannot set up the worker sandbox", sandbox.status());
  }
  log.Info("worker sandbox", {{"settings", sandbox->summary}});

  // Service manager hand-offs (docs/operations.md, "Service managers"), taken out of the
  // environment at once so the workers we spawn do not inherit them.
  const char* notify_env = ::getenv("NOTIFY_SOCKET");
  const std::string notify_socket = notify_env != nullptr ? notify_env : "";
  absl::StatusOr<std::vector<int>> passed_fds = supermachine::service::ParseListenFds(
      ::getenv("LISTEN_PID"), ::getenv("LISTEN_FDS"), ::getpid());
  for (const char* name : {"NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}) {
    ::unsetenv(name);
  }
  if (passed_fds.ok() && passed_fds->size() > 1) {
    passed_fds = absl::InvalidArgumentError(absl::StrCat(
        "systemd passed ", passed_fds->size(), " sockets; supermachined takes exactly one "
        "(a single ListenStream=/path in supermachined.socket)"));
  }
  if (!passed_fds.ok()) {
    return Fail(log, "cannot use the sockets systemd passed", passed_fds.status());
  }
  // With socket activation systemd owns the Unix socket (path, mode, group come from the
  // .socket unit) and it, not --socket, is the API socket.
  UniqueFd activated_fd(passed_fds->empty() ? -1 : passed_fds->front());
  std::string activated_path;
  if (activated_fd) {
    absl::StatusOr<std::string> path = supermachine::service::UnixListenerPath(activated_fd.get());
    if (!path.ok()) {
      return Fail(log, "cannot use the socket systemd passed", path.status());
    }
    activated_path = *path;
  }

  // The socket is claimed first: a second daemon must be refused before it touches state.
  absl::Status st;
  absl::StatusOr<UniqueFd> socket_lock = UniqueFd();
  if (!activated_fd) {
    st = MakeDirs(std::filesystem::path(config.socket).parent_path().string(), 0755);
    if (!st.ok()) {
      return Fail(log, "cannot prepare the socket directory", st);
    }
    socket_lock = ClaimSocket(config.socket, log);
    if (!socket_lock.ok()) {
      return Fail(log, "cannot claim the socket", socket_lock.status());
    }
  }
  st = MakeDirs(config.state_dir, 0700);
  if (st.ok()) {
    st = MakeDirs(config.snapshots_dir, 0700);
  }
  if (!st.ok()) {
    return Fail(log, "cannot prepare the state directories", st);
  }

  const std::string db_path = config.state_dir + "/store.db";
  absl::StatusOr<supermachine::store::Store> store = supermachine::store::Store::Open(db_path, NowMs);
  if (!store.ok()) {
    return Fail(log, "cannot open the store", store.status());
  }
  absl::StatusOr<std::vector<supermachine::store::BakeRecord>> recovered =
      store->RecoverInterruptedBakes();
  if (!recovered.ok()) {
    return Fail(log, "cannot recover interrupted bakes", recovered.status());
  }
  // Their workers run in their own session and outlived the crash (a guest and its RAM each):
  // kill them first. Matched by the temp dir their console names, which only this store's rows
  // hold, so another daemon's bakes are never touched (daemon/bake/orphan_sweep.h).
  std::vector<std::string> interrupted_dirs;
  for (const auto& bake : *recovered) {
    if (bake.temp_dir.find(".tmp-bake-") != std::string::npos) {
      interrupted_dirs.push_back(bake.temp_dir);
    }
  }
  size_t bake_workers_killed = 0;
  if (!interrupted_dirs.empty()) {
    supermachine::vm::ProcFs procs;
    supermachine::bake::OrphanSweepReport swept = supermachine::bake::KillOrphanBakeWorkers(
        procs, supermachine::bake::FindOrphanBakeWorkers(procs, interrupted_dirs),
        absl::Seconds(10));
    for (const supermachine::bake::OrphanBakeWorker& w : swept.killed) {
      log.Info("killed orphaned bake worker",
               {{"pid", std::to_string(w.pid)}, {"temp_dir", w.work_dir}});
    }
    for (const std::string& p : swept.problems) {
      log.Warn("orphaned bake worker", {{"problem", p}});
    }
    bake_workers_killed = swept.killed.size();
  }
  for (const auto& bake : *recovered) {
    // Recovery happens here, before the Baker exists (it may not: no kernel configured), so
    // the half-written snapshot dir goes here too. Only dirs the pipeline named (".tmp-bake-")
    // are removed: a row's path must never make the daemon delete anything else.
    std::string removed = "no";
    if (bake.temp_dir.find(".tmp-bake-") != std::string::npos) {
      std::error_code ec;
      std::filesystem::remove_all(bake.temp_dir, ec);
      removed = ec ? "failed: " + ec.message() : "yes";
    }
    log.Warn("bake was interrupted by a daemon restart; marked failed",
             {{"bake_id", std::to_string(bake.id)}, {"bake_key", bake.bake_key},
              {"temp_dir", bake.temp_dir}, {"temp_dir_removed", removed}});
  }
  log.Info("store opened", {{"path", db_path},
                            {"interrupted_bakes", std::to_string(recovered->size())},
                            {"bake_workers_killed", std::to_string(bake_workers_killed)}});

  st = MakeDirs(config.vm_dir, 0700);
  if (!st.ok()) {
    return Fail(log, "cannot prepare the VM directory", st);
  }
  supermachine::metrics::DaemonMetrics metrics(SM_VERSION);

  // VMs: the store is one SQLite connection; the API and the VM journal share its mutex.
  absl::Mutex store_mu;
  supermachine::vm::StoreJournal journal(&*store, &store_mu);
  // Named volumes (docs/volumes.md): files in <state>/volumes, rows in the store.
  supermachine::vm::NamedVolumes volumes(
      config.state_dir + "/volumes",
      [&store_mu, &store](const std::function<absl::Status(supermachine::store::Store&)>& fn) {
        absl::MutexLock lock(&store_mu);
        return fn(*store);
      });
  const std::string worker_binary = FindWorkerBinary(config.worker_binary);

  // The bake pipeline needs the guest kernel and agent; without them the daemon still serves
  // existing snapshots.
  std::unique_ptr<supermachine::bake::Baker> baker;
  if (config.kernel.empty() || config.guest_agent.empty()) {
    log.Warn("Bake is unavailable: set kernel and guest_agent in the config to enable it");
  } else {
    absl::StatusOr<std::unique_ptr<supermachine::bake::Baker>> b =
        supermachine::bake::Baker::Create({
            .with_store = supermachine::bake::LockedStoreAccess(&*store, &store_mu),
            .state_dir = config.state_dir,
            .snapshots_dir = config.snapshots_dir,
            .kernel_path = config.kernel,
            .agent_path = config.guest_agent,
            .worker_path = worker_binary,
            .worker_balloon = config.worker_balloon,
            .console_max_bytes = uint64_t{config.console_log_max_mib} << 20,
            .worker_jail = sandbox->jail,
        });
    if (!b.ok()) {
      return Fail(log, "cannot set up the bake pipeline", b.status());
    }
    baker = std::move(*b);
  }
  supermachine::vm::WorkerLauncher launcher({
      .worker_binary = worker_binary,
      .runtime_dir = config.vm_dir,
      .journal = &journal,
      .seccomp = config.worker_seccomp,
      .jail = sandbox->jail,
      .jail_uid = sandbox->uid,
      .jail_gid = sandbox->gid,
      .uid_pool = sandbox->uid_range.count == 0
                      ? nullptr
                      : std::make_shared<supermachine::vm::UidPool>(sandbox->uid_range.first,
                                                                    sandbox->uid_range.count),
      .cgroup_parent = config.worker_cgroup_parent,
      .console_max_bytes = uint64_t{config.console_log_max_mib} << 20,
      .ksm = config.worker_ksm,
  });
  supermachine::vm::VmManagerOptions vm_options{
      .launcher = &launcher,
      .journal = &journal,
      .resolve_snapshot = [&store_mu, &store](const std::string& name)
          -> absl::StatusOr<std::string> {
        absl::MutexLock lock(&store_mu);
        absl::StatusOr<supermachine::store::SnapshotRecord> snap = store->GetSnapshot(name);
        if (!snap.ok()) {
          return snap.status();
        }
        return snap->path;
      },
      .default_pool = ToPoolConfig(config.default_pool),
      .on_acquire = [&metrics](const std::string&, bool hit, absl::Duration took) {
        metrics.ObserveAcquire(hit, absl::ToDoubleSeconds(took));
      },
      .on_worker_crash = [&metrics] { metrics.CountWorkerCrash(); },
      .on_restart = [&metrics, &log](const std::string& old_id,
                                     const absl::StatusOr<std::string>& new_id) {
        metrics.CountVmRestart(new_id.ok());
        if (new_id.ok()) {
          log.Info("restarted VM by its restart policy", {{"vm", old_id}, {"new_vm", *new_id}});
        } else {
          log.Warn("restart of VM failed; retried after backoff",
                   {{"vm", old_id}, {"error", std::string(new_id.status().message())}});
        }
      },
      .on_health = [&log](const std::string& id, supermachine::vm::HealthState state,
                          const std::string& check) {
        log.Info("VM health changed", {{"vm", id},
                                       {"health", supermachine::vm::HealthStateName(state)},
                                       {"check", check}});
      },
      .volumes = &volumes,
      .idle_balloon = {.idle_after = absl::Seconds(config.balloon_idle_after_s),
                       .target_percent = config.balloon_idle_target_percent},
      .on_balloon = [&metrics, &log](const supermachine::vm::IdleBalloonEvent& e) {
        using Kind = supermachine::vm::IdleBalloonEvent::Kind;
        switch (e.kind) {
          case Kind::kInflated:
            metrics.CountBalloonInflation();
            log.Info("idle VM: balloon inflated", {{"vm", e.vm_id},
                                                  {"pages", std::to_string(e.pages)}});
            break;
          case Kind::kDeflated:
            log.Info("VM active again: balloon deflated", {{"vm", e.vm_id}});
            break;
          case Kind::kUnsupported:
            log.Info("idle balloon policy skips VM", {{"vm", e.vm_id}, {"reason", e.detail}});
            break;
          case Kind::kFailed:
            log.Warn("idle balloon command failed", {{"vm", e.vm_id}, {"error", e.detail}});
            break;
        }
      },
  };
  for (const auto& [name, settings] : config.pools) {
    vm_options.pools[name] = ToPoolConfig(settings);
  }
  if (baker != nullptr) {
    // Acquire of an image ref that is not a snapshot name bakes it with the defaults.
    vm_options.bake = [&baker](const std::string& image,
                               absl::Time deadline) -> absl::StatusOr<std::string> {
      supermachine::v1::BakeRequest req;
      req.set_image(image);
      absl::StatusOr<supermachine::bake::BakeRequest> request =
          supermachine::api::BakeRequestFromProto(req);
      if (!request.ok()) {
        return request.status();
      }
      absl::StatusOr<supermachine::bake::BakeResult> result =
          baker->Bake(*request, nullptr, deadline);
      if (!result.ok()) {
        return result.status();
      }
      return result->snapshot_name;
    };
  }
  vm_options.keep_handed_out_on_stop = config.keep_vms_on_stop;
  supermachine::vm::VmManager vms(std::move(vm_options));
  if (!ReconcileVms(*store, store_mu, journal, launcher, vms, config.vm_dir, log)) {
    return Fail(log, "cannot reconcile VMs with the store",
                absl::InternalError("see the log lines above"));
  }
  st = vms.StartPools();
  if (!st.ok()) {
    log.Warn("some configured pools cannot start yet", {{"error", std::string(st.message())}});
  }
  log.Info("VMs", {{"worker", worker_binary}, {"vm_dir", config.vm_dir},
                   {"pools", std::to_string(config.pools.size())}});

  supermachine::api::SupermachineService service({
      .store = &*store,
      .snapshots_dir = config.snapshots_dir,
      .daemon_version = SM_VERSION,
      .on_rpc_done =
          [&metrics](const std::string& method, grpc::StatusCode code) {
            metrics.CountRpc(method, supermachine::api::GrpcCodeName(code));
          },
      .vms = &vms,
      .baker = baker.get(),
      .store_mu = &store_mu,
      .volumes = &volumes,
  });

  grpc::EnableDefaultHealthCheckService(true);
#ifdef SM_HAVE_GRPC_REFLECTION
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
#endif
  // Remote access: TLS (+ mTLS) and a bearer token on every call, or no TCP port at all.
  std::unique_ptr<supermachine::api::RemoteListener> remote;
  if (!config.tcp.empty()) {
    absl::StatusOr<std::unique_ptr<supermachine::api::RemoteListener>> r =
        supermachine::api::RemoteListener::Prepare({
            .address = config.tcp,
            .tls_cert = config.tls_cert,
            .tls_key = config.tls_key,
            .tls_client_ca = config.tls_client_ca,
            .token_file = config.token_file,
            .on_reject = [&log](const std::string& reason) {
              log.Warn("remote call refused", {{"reason", reason}});
            },
        });
    if (!r.ok()) {
      return Fail(log, "cannot set up the remote (--tcp) listener", r.status());
    }
    remote = std::move(*r);
  }

  grpc::ServerBuilder builder;
  if (!activated_fd) {
    builder.AddListeningPort("unix:" + config.socket, grpc::InsecureServerCredentials());
  }
  if (remote != nullptr) {
    remote->AddTo(builder);
  }
  builder.RegisterService(&service);
  // gRPC creates the socket with 0777 & ~umask; keep it owner-only until chmod/chown below
  // set the configured access, so there is no window where it is wider than asked.
  mode_t old_umask = ::umask(0177);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old_umask);
  if (server == nullptr) {
    return Fail(log, "cannot start the gRPC server",
                remote != nullptr && !remote->BoundPort().ok()
                    ? remote->BoundPort().status()
                    : absl::UnavailableError(
                          absl::StrCat("listen on unix:", config.socket, " failed")));
  }
  std::unique_ptr<supermachine::service::InheritedListener> activated;
  if (activated_fd) {
    absl::StatusOr<std::unique_ptr<supermachine::service::InheritedListener>> a =
        supermachine::service::InheritedListener::Start(
            std::move(activated_fd), server.get(), [&log](const std::string& error) {
              log.Warn("socket activation: accept failed", {{"error", error}});
            });
    if (!a.ok()) {
      server->Shutdown();
      return Fail(log, "cannot serve the socket systemd passed", a.status());
    }
    activated = std::move(*a);
  } else {
    st = SetSocketAccess(config);
    if (!st.ok()) {
      server->Shutdown();
      ::unlink(config.socket.c_str());
      return Fail(log, "cannot set the socket's access", st);
    }
  }
  if (remote != nullptr) {
    log.Info("remote listening", {{"address", config.tcp},
                                  {"port", std::to_string(*remote->BoundPort())},
                                  {"mtls", remote->mutual_tls() ? "required" : "off"}});
  }

  // Per-VM network series (docs/networking.md "Metrics"): each handed-out VM's worker is
  // asked at scrape time; one that cannot answer in time is left out of that scrape.
  metrics.SetVmNetSource([&vms] {
    std::vector<supermachine::metrics::DaemonMetrics::VmNetSample> out;
    for (const supermachine::vm::VmView& v : vms.List()) {
      absl::StatusOr<supermachine::metrics::VmNetStats> s = supermachine::metrics::ReadVmNetStats(
          v.vm->control_socket(), absl::Now() + absl::Milliseconds(500));
      if (s.ok()) {
        out.push_back({.vm_id = v.id, .snapshot = v.snapshot, .stats = *s});
      }
    }
    return out;
  });
  if (!config.metrics_address.empty()) {
    st = metrics.Serve(
        config.metrics_address,
        [&service]() -> int64_t {
          absl::StatusOr<int64_t> n = service.CountSnapshots();
          return n.ok() ? *n : -1;
        },
        [&vms, &metrics] {
          metrics.SetVmsRunning(static_cast<int64_t>(vms.Running()));
          metrics.SetVmsBalloonInflated(static_cast<int64_t>(vms.BalloonsInflated()));
          int64_t health[4] = {0, 0, 0, 0};  // by vm::HealthState
          for (const supermachine::vm::VmView& v : vms.List()) {
            ++health[static_cast<int>(v.health)];
          }
          metrics.SetVmsHealth(health[1], health[2], health[3]);
          // One series per snapshot: pools of one snapshot with different egress overrides
          // are summed, or the last pool written would hide the others.
          std::map<std::string, std::pair<int64_t, int64_t>> per_snapshot;
          for (const auto& p : vms.PoolStatistics()) {
            auto& [ready, in_use] = per_snapshot[p.snapshot];
            ready += p.stats.ready;
            in_use += p.stats.in_use;
          }
          for (const auto& [snapshot, counts] : per_snapshot) {
            metrics.SetPool(snapshot, counts.first, counts.second);
          }
        });
    if (!st.ok()) {
      server->Shutdown();
      ::unlink(config.socket.c_str());
      return Fail(log, "cannot start the metrics exporter", st);
    }
    log.Info("metrics listening", {{"address", config.metrics_address},
                                   {"port", std::to_string(metrics.port())}});
  }
  char mode_text[8];
  std::snprintf(mode_text, sizeof(mode_text), "%04o", config.socket_mode);
  log.Info("serving", {{"socket", activated ? activated_path : config.socket},
                       {"socket_mode", activated ? "from supermachined.socket" : mode_text},
                       {"metrics_port", std::to_string(metrics.port())}});
  // Type=notify: systemd starts After= units (and ends `systemctl start`) only now.
  st = supermachine::service::SdNotify(notify_socket, "READY=1\nSTATUS=serving");
  if (!st.ok()) {
    log.Warn("cannot notify the service manager", {{"error", std::string(st.message())}});
  }

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  log.Info("stopping", {{"signal", strsignal(sig)}});
  (void)supermachine::service::SdNotify(notify_socket, "STOPPING=1");
  activated.reset();  // no new connections from the passed socket
  // Health checks flip to NOT_SERVING first so load balancers stop sending new work.
  if (auto* health = server->GetHealthCheckService(); health != nullptr) {
    health->Shutdown();
  }
  server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  server->Wait();
  // `vms` goes out of scope after this: handed-out and pooled VMs are stopped and journaled
  // as released: a clean stop is the operator's "stop the service" (the unit's
  // KillMode=process leaves that to us). Only a crash (kill -9) leaves workers behind, and the
  // next start re-adopts them (ReconcileVms, docs/operations.md); keep_vms_on_stop leaves the
  // handed-out ones so on a clean stop too.
  if (config.keep_vms_on_stop) {
    log.Info("handed-out VMs keep running for the next start (keep_vms_on_stop)",
             {{"vms", std::to_string(vms.List().size())}});
  }
  // A passed socket is systemd's: it stays, so the next connection starts us again.
  if (activated_path.empty() && ::unlink(config.socket.c_str()) != 0 && errno != ENOENT) {
    log.Warn("cannot remove the socket", {{"socket", config.socket}, {"error", strerror(errno)}});
  }
  log.Info("stopped");
  return 0;
}
