// File: worker_launcher.cc
#include "daemon/vm/worker_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/agent/dialer.h"
#include "daemon/vm/identity.h"
#include "daemon/vm/process_table.h"
#include "daemon/vm/reconcile.h"
#include "daemon/vm/volume_files.h"
#include "guest-agent/protocol/frame.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"
#include "worker/jail/cgroup.h"

namespace supermachine::vm {
namespace {

// One ping attempt's bound while waiting for the agent: short, so a worker that died is
// noticed between attempts instead of after the whole deadline.
constexpr absl::Duration kPingAttempt = absl::Milliseconds(500);
constexpr absl::Duration kPingRetry = absl::Milliseconds(20);
constexpr size_t kLogTailBytes = 2048;
constexpr int kExitRefusedSnapshot = 2;

}  // namespace

absl::StatusOr<int64_t> ProcessStartTime(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) {
    return absl::NotFoundError(absl::StrCat("process ", pid, " is gone"));
  }
  absl::StatusOr<ProcStat> st = ParseProcStat(line);
  if (!st.ok()) {
    return absl::InternalError(absl::StrCat("unparsable /proc/", pid, "/stat"));
  }
  return st->start_time;
}

std::string FileTail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return "";
  }
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff from = size > static_cast<std::streamoff>(max_bytes)
                            ? size - static_cast<std::streamoff>(max_bytes)
                            : 0;
  in.seekg(from);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

WorkerVm::~WorkerVm() { Stop(absl::Seconds(2)); }

std::string WorkerVm::DescribeEnd(const VmEnd& end) const {
  if (end.cause == store::EndCause::kGuestOom) {
    return absl::StrCat("the kernel's OOM killer ended the worker: its cgroup ", cgroup_,
                        " reached memory.max (guest RAM + VMM overhead; memory.events "
                        "oom_kill)");
  }
  if (end.signal && *end.signal == SIGSYS) {
    return "seccomp violation: the worker made a system call outside its allowlist and was "
           "killed by SIGSYS (the kernel audit log, dmesg type=1326, names it; rerun with "
           "worker_seccomp \"trap\" to have it in worker.log; docs/seccomp.md)";
  }
  if (end.signal) {
    return absl::StrCat("the worker was killed by signal ", *end.signal, " (",
                        strsignal(static_cast<int>(*end.signal)), ")");
  }
  return absl::StrCat("the worker exited with code ", end.exit_code.value_or(-1));
}

void WorkerVm::ClassifyEnd(VmEnd* end) const {
  if (!cgroup_.empty()) {
    std::optional<uint64_t> ooms = jail::OomKillCount(cgroup_);
    if (ooms && *ooms > 0) {
      end->cause = store::EndCause::kGuestOom;
    }
    (void)jail::RemoveCgroup(cgroup_);
  }
  if (end->cause == store::EndCause::kGuestOom || (end->signal && *end->signal == SIGSYS)) {
    // The audit line next to the worker's own output.
    std::ofstream log(dir_ + "/worker.log", std::ios::app);
    log << "supermachined: VM " << id_ << ": " << DescribeEnd(*end) << "\n";
  }
}

std::optional<VmEnd> WorkerVm::CheckExited() {
  absl::MutexLock lock(&mu_);
  if (stopped_) {
    return std::nullopt;  // Stop reported the end itself.
  }
  if (!child_) {
    // Adopted: not our child, so its exit status is lost (init reaps it); gone is all we see.
    std::optional<int64_t> start = procs_.StartTime(adopted_pid_);
    if (start && *start == adopted_start_) {
      return std::nullopt;
    }
    ReleaseUidLocked();
    return VmEnd{.cause = store::EndCause::kWorkerCrash};
  }
  if (ended_) {
    return ended_;
  }
  std::optional<base::ExitStatus> st = child_->TryWait();
  if (!st) {
    return std::nullopt;
  }
  VmEnd end{.cause = store::EndCause::kWorkerCrash};
  if (st->signaled) {
    end.signal = st->signal;
  } else {
    end.exit_code = st->code;
  }
  ClassifyEnd(&end);
  ended_ = end;
  ReleaseUidLocked();  // Reaped: the keeper ends after the worker it relays.
  return end;
}

bool WorkerVm::SendExit(absl::Time deadline) const {
  absl::StatusOr<base::UniqueFd> fd = agent::ConnectUnix(control_, deadline);
  if (!fd.ok()) {
    return false;
  }
  static constexpr char kExit[] = "exit\n";
  if (::send(fd->get(), kExit, sizeof(kExit) - 1, MSG_NOSIGNAL) != sizeof(kExit) - 1) {
    return false;
  }
  // The reply ("OK exiting") is not needed: the worker's exit is what we wait for.
  return true;
}

void WorkerVm::Stop(absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  if (stopped_) {
    return;
  }
  stopped_ = true;
  if (!child_) {
    StopAdoptedLocked(grace);
  } else if (child_->running()) {
    if (!control_.empty() && SendExit(absl::Now() + absl::Milliseconds(200))) {
      (void)child_->WaitFor(grace);
    }
    if (child_->running()) {
      (void)child_->Terminate(grace);  // SIGTERM to the group, then SIGKILL.
    }
  }
  std::error_code ec;
  std::filesystem::remove(vsock_, ec);
  std::filesystem::remove(control_, ec);
  // The VM's private volume copies end with it (named volumes live in the state dir).
  std::filesystem::remove_all(dir_ + "/volumes", ec);
  if (!cgroup_.empty()) {
    (void)jail::RemoveCgroup(cgroup_);  // Empty now that the worker is gone.
  }
  ReleaseUidLocked();
}

void WorkerVm::Detach() {
  absl::MutexLock lock(&mu_);
  if (stopped_) {
    return;
  }
  stopped_ = true;
  // The agent connection closes with this object (other threads may still hold agent());
  // the agent accepts the next daemon's connection as it does after a crash. The uid lease is
  // this process's bookkeeping only: the next start reads the uid back from the worker's argv.
  if (child_) {
    (void)child_->Release();
  }
}

void WorkerVm::StopAdoptedLocked(absl::Duration grace) {
  auto alive = [this] {
    std::optional<int64_t> start = procs_.StartTime(adopted_pid_);
    return start && *start == adopted_start_;
  };
  if (!alive()) {
    return;
  }
  if (!control_.empty() && SendExit(absl::Now() + absl::Milliseconds(200)) &&
      WaitGone(procs_, adopted_pid_, adopted_start_, grace)) {
    return;
  }
  // Each signal re-checks the start time: the pid may have been reused in between.
  for (int sig : {SIGTERM, SIGKILL}) {
    if (!alive()) {
      return;
    }
    procs_.Signal(adopted_pid_, sig);
    if (WaitGone(procs_, adopted_pid_, adopted_start_,
                 sig == SIGKILL ? absl::Seconds(10) : grace)) {
      return;
    }
  }
}

absl::StatusOr<std::unique_ptr<VmInstance>> WorkerLauncher::Adopt(const store::VmRecord& row,
                                                                  absl::Time deadline) {
  if (!row.pid || !row.pid_start_time) {
    return absl::FailedPreconditionError(
        absl::StrCat("VM ", row.id, " has no journaled worker pid and start time"));
  }
  const std::string dir = row.control_socket.empty()
                              ? absl::StrCat(options_.runtime_dir, "/", row.id)
                              : std::filesystem::path(row.control_socket).parent_path().string();
  auto vm = std::unique_ptr<WorkerVm>(
      new WorkerVm(row.id, dir, static_cast<int>(*row.pid), *row.pid_start_time));
  vm->vsock_ = dir + "/vsock";
  vm->control_ = dir + "/control";
  vm->console_ = dir + "/console.log";
  vm->agent_ = std::make_unique<agent::AgentClient>(
      std::make_unique<agent::HybridVsockDialer>(vm->vsock_, agent::protocol::kAgentPort));
  // Its cgroup (worker_cgroup_parent): the worker made <parent>/sm-<id> at spawn and it is
  // still there while the worker lives. Known again here so that the VM's end reports an OOM
  // kill and removes the directory, as for a VM this daemon started. Derived from the config,
  // not read from the worker's argv, which a worker taken over by its guest could rewrite. (A
  // parent changed across the restart leaves the old directory behind: it is not ours then.)
  if (!options_.cgroup_parent.empty()) {
    const std::string cgroup = absl::StrCat(options_.cgroup_parent, "/sm-", row.id);
    std::error_code ec;
    if (std::filesystem::is_directory(cgroup, ec)) {
      vm->cgroup_ = cgroup;
    }
  }
  if (options_.uid_pool != nullptr) {
    // The worker keeps the uid it was started with; hold it so no new VM is given it too.
    if (std::optional<uint32_t> uid = WorkerUidOf(ProcFs().Argv(static_cast<int>(*row.pid)))) {
      absl::MutexLock lock(&vm->mu_);
      vm->uid_ = options_.uid_pool->MarkTaken(*uid);
    }
  }
  absl::Status last = absl::UnavailableError("no ping attempted");
  while (true) {
    if (vm->CheckExited()) {
      return absl::UnavailableError(
          absl::StrCat("the worker of VM ", row.id, " exited while being re-adopted"));
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      // `vm` goes out of scope: its destructor stops the unusable worker.
      return absl::DeadlineExceededError(absl::StrCat(
          "the guest agent of VM ", row.id, " did not answer (", last.message(), ")"));
    }
    absl::StatusOr<agent::PingInfo> p = vm->agent()->Ping(std::min(deadline, now + kPingAttempt));
    if (p.ok()) {
      return vm;
    }
    last = p.status();
    absl::SleepFor(kPingRetry);
  }
}

absl::StatusOr<std::unique_ptr<WorkerVm>> WorkerLauncher::Spawn(const LaunchRequest& request) {
  // A uid of its own first: with every uid held nothing is created or spawned. The lease goes
  // with this function's error returns, else with the VM once its worker is reaped.
  UidLease uid;
  if (options_.jail && options_.uid_pool != nullptr) {
    absl::StatusOr<UidLease> lease = options_.uid_pool->Acquire();
    if (!lease.ok()) {
      return base::Annotate(lease.status(), absl::StrCat("restore VM ", request.vm_id));
    }
    uid = std::move(*lease);
  }
  const std::string dir = absl::StrCat(options_.runtime_dir, "/", request.vm_id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("create VM directory ", dir, ": ", ec.message()));
  }
  const std::string worker_log = dir + "/worker.log";
  base::UniqueFd log(::open(worker_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (!log) {
    return base::ErrnoToStatus(errno, absl::StrCat("open ", worker_log));
  }
  const std::string vsock = dir + "/vsock";
  const std::string control = dir + "/control";
  const std::string console = dir + "/console.log";
  std::vector<std::string> argv = {options_.worker_binary, "--restore", request.snapshot_dir,
                                   "--vsock", vsock, "--control", control, "--serial",
                                   "file:" + console,
                                   absl::StrCat("--serial-max-bytes=", options_.console_max_bytes)};
  if (options_.ksm) {
    argv.push_back("--ksm");
  }
  // The sandbox (docs/security.md "Worker sandbox"): flags of the worker, as the daemon
  // resolved them at start (daemon/config/worker_sandbox.h).
  if (!options_.seccomp.empty()) {
    argv.push_back("--seccomp=" + options_.seccomp);
  }
  if (options_.jail) {
    argv.push_back("--jail-dir=" + dir + "/jail");
    if (uid.held()) {
      argv.push_back(absl::StrCat("--uid=", uid.uid()));
      argv.push_back(absl::StrCat("--gid=", uid.uid()));
    } else if (options_.jail_uid != 0) {
      argv.push_back(absl::StrCat("--uid=", options_.jail_uid));
      argv.push_back(absl::StrCat("--gid=", options_.jail_gid));
    }
  }
  const std::string cgroup =
      options_.cgroup_parent.empty() ? "" : absl::StrCat(options_.cgroup_parent, "/sm-", request.vm_id);
  if (!cgroup.empty()) {
    argv.push_back("--cgroup=" + cgroup);
  }
  // Volumes: one --disk per saved disk, each volume slot at a file of this VM alone; the
  // snapshot's own templates are never opened by a restore (clones would share them).
  SM_ASSIGN_OR_RETURN(RestoreDisks disks,
                      PrepareRestoreDisks(request.snapshot_dir, dir, request.volume_files));
  absl::Cleanup drop_copies = [&] { std::filesystem::remove_all(dir + "/volumes", ec); };
  for (const std::string& d : disks.disk_args) {
    argv.push_back("--disk");
    argv.push_back(d);
  }
  if (!request.egress_policy.empty()) {
    // The restore keeps the snapshot's network device (fresh MAC, new passt) and takes this
    // policy instead of the saved one; a snapshot without one refuses (docs/networking.md).
    argv.push_back("--net");
    argv.push_back("passt,egress=" + request.egress_policy);
  }
  SM_ASSIGN_OR_RETURN(base::ChildProcess child,
                      base::ChildProcess::Spawn({
                          .argv = std::move(argv),
                          .stdout_fd = log.get(),
                          .stderr_fd = log.get(),
                          // Own session: the worker outlives the daemon and our signals.
                          .new_session = true,
                      }));
  std::move(drop_copies).Cancel();  // the VM's Stop removes them from here on
  auto vm = std::unique_ptr<WorkerVm>(new WorkerVm(request.vm_id, dir, std::move(child)));
  vm->vsock_ = vsock;
  vm->control_ = control;
  vm->console_ = console;
  vm->cgroup_ = cgroup;
  {
    absl::MutexLock lock(&vm->mu_);
    vm->uid_ = std::move(uid);
  }
  vm->agent_ = std::make_unique<agent::AgentClient>(
      std::make_unique<agent::HybridVsockDialer>(vsock, agent::protocol::kAgentPort));
  return vm;
}

absl::Status WorkerLauncher::Handshake(WorkerVm& vm, const LaunchRequest& request,
                                       absl::Time deadline) {
  const std::string worker_log = vm.dir_ + "/worker.log";
  absl::Status last = absl::UnavailableError("no ping attempted");
  std::optional<agent::PingInfo> ping;
  while (true) {
    if (std::optional<VmEnd> end = vm.CheckExited()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "worker for VM ", vm.id(), " exited during restore of ", request.snapshot_dir, " (",
          vm.DescribeEnd(*end), "); its log ", worker_log,
          " ends with: ", FileTail(worker_log, kLogTailBytes)));
    }
    absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the guest agent of VM ", vm.id(), " did not answer before the deadline (last: ",
          last.message(), "); console log: ", vm.console_log()));
    }
    absl::StatusOr<agent::PingInfo> p = vm.agent()->Ping(std::min(deadline, now + kPingAttempt));
    if (p.ok()) {
      ping = *p;
      break;
    }
    last = p.status();
    absl::SleepFor(kPingRetry);
  }
  SM_ASSIGN_OR_RETURN(std::string entropy, RandomBytes(32));
  SM_ASSIGN_OR_RETURN(std::string machine_id, RandomHexId());
  agent::RestoreInfo info{
      .entropy = entropy,
      .wall_clock = absl::Now(),
      .vm_id = vm.id(),
      .hostname = request.hostname,
      .machine_id = machine_id,
      .generation = ping->generation + 1,
  };
  absl::StatusOr<uint64_t> acked = vm.agent()->Restored(info, deadline);
  if (!acked.ok()) {
    return base::Annotate(acked.status(), absl::StrCat("restore handshake with VM ", vm.id()));
  }
  if (*acked != info.generation) {
    return absl::InternalError(absl::StrCat("VM ", vm.id(), ": agent acknowledged generation ",
                                            *acked, ", expected ", info.generation));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<VmInstance>> WorkerLauncher::Launch(const LaunchRequest& request,
                                                                  absl::Time deadline) {
  SM_ASSIGN_OR_RETURN(std::unique_ptr<WorkerVm> vm, Spawn(request));
  // Journal at once, before the VM is handed out or even reachable: a daemon crash from here
  // on leaves a row that names this pid and start time, so a restart can find the worker.
  absl::StatusOr<int64_t> start_time = ProcessStartTime(vm->pid());
  store::VmRecord record{
      .id = request.vm_id,
      .name = request.name,
      .snapshot_name = request.snapshot_name,
      .pid = vm->pid(),
      .pid_start_time = start_time.ok() ? std::optional<int64_t>(*start_time) : std::nullopt,
      .control_socket = vm->control_,
      .labels_json = request.labels_json,
  };
  if (absl::Status st = options_.journal->Journal(record); !st.ok()) {
    vm->Stop(absl::ZeroDuration());
    return st;
  }
  absl::Status st = Handshake(*vm, request, deadline);
  if (st.ok()) {
    st = options_.journal->MarkRunning(request.vm_id);
  }
  if (!st.ok()) {
    std::optional<VmEnd> crashed = vm->CheckExited();
    vm->Stop(options_.stop_grace);
    VmEnd end = crashed ? *crashed
                        : VmEnd{.cause = absl::IsDeadlineExceeded(st) ? store::EndCause::kDeadline
                                                                      : store::EndCause::kWorkerCrash};
    // The worker exits 2 when it refuses a snapshot (format, CPU, vCPU count: docs/snapshot.md).
    if (crashed && crashed->exit_code == kExitRefusedSnapshot) {
      end.cause = store::EndCause::kSnapshotIncompatible;
    }
    (void)options_.journal->End(request.vm_id, end);
    return st;
  }
  return vm;
}

}  // namespace supermachine::vm
