// File: worker_booter.cc
#include "daemon/bake/worker_booter.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "daemon/agent/agent_client.h"
#include "daemon/agent/dialer.h"
#include "daemon/bake/delta.h"
#include "daemon/vm/worker_control.h"
#include "guest-agent/protocol/frame.h"
#include "worker/base/child_process.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::bake {
namespace {

constexpr size_t kConsoleTailLines = 50;
// Each agent call is bounded by this slice, so a dead worker is noticed between slices.
constexpr absl::Duration kPollSlice = absl::Milliseconds(500);

uint64_t MsSince(absl::Time t0) {
  return static_cast<uint64_t>(absl::ToInt64Milliseconds(absl::Now() - t0));
}

// One boot: owns the state of a single BootAndSnapshot call (the booter itself is shared by
// concurrent bakes).
class WorkerRun {
 public:
  WorkerRun(std::string worker, std::string kernel, bool balloon, uint64_t console_max_bytes,
            bool jail)
      : worker_(std::move(worker)), kernel_(std::move(kernel)), balloon_(balloon),
        console_max_bytes_(console_max_bytes), jail_(jail) {}

  absl::StatusOr<BootTimings> BootAndSnapshot(const BootPlan& plan, const ProgressFn& progress) {
    auto report = [&](BakeProgress::Stage stage, std::string message) {
      if (progress) {
        progress({.stage = stage, .message = std::move(message)});
      }
    };
    std::string sock_dir = absl::StrCat(kBakeSocketDirPrefix, "XXXXXX");
    if (::mkdtemp(sock_dir.data()) == nullptr) {
      return base::ErrnoToStatus(errno, "bake: mkdtemp /tmp/smbake-*");
    }
    const std::string vsock = sock_dir + "/vsock";
    const std::string control = sock_dir + "/control";
    const std::string jail_dir = sock_dir + "/jail";
    absl::Cleanup drop_socks = [&] {
      ::unlink(vsock.c_str());
      ::unlink(control.c_str());
      ::rmdir(jail_dir.c_str());  // the jail's mount point, when jailed (empty again)
      ::rmdir(sock_dir.c_str());
    };
    console_ = plan.work_dir + "/console.log";
    worker_log_ = plan.work_dir + "/worker.log";
    const std::string& worker_log = worker_log_;

    std::vector<std::string> argv = {
        worker_, "--kernel", kernel_, "--cmdline", kBakeKernelCmdline,
        "--mem-mib", absl::StrCat(plan.memory_mib), "--vcpus", absl::StrCat(plan.vcpus),
        "--disk", absl::StrCat(plan.delta_sqfs, ",ro,id=", kDeltaDiskId)};
    for (size_t i = 0; i < plan.layer_sqfs.size(); ++i) {
      argv.insert(argv.end(), {"--disk", absl::StrCat(plan.layer_sqfs[i], ",ro,id=", LayerDiskId(i))});
    }
    for (size_t i = 0; i < plan.volume_images.size(); ++i) {
      argv.insert(argv.end(),
                  {"--disk", absl::StrCat(plan.volume_images[i], ",rw,id=", VolumeDiskId(i))});
    }
    argv.insert(argv.end(), {"--serial", "file:" + console_,
                             absl::StrCat("--serial-max-bytes=", console_max_bytes_), "--vsock",
                             vsock, "--control", control});
    if (balloon_) {
      argv.push_back("--balloon");
    }
    if (jail_) {
      // The image's entrypoint runs in this VM before the snapshot: the worker is jailed like a
      // restored one (docs/security.md "Worker sandbox"), seeing only its socket directory and
      // the snapshot's temp directory. It stays uid 0 without capabilities: that directory is
      // the daemon's, and the snapshot reads /proc/self/pagemap.
      argv.push_back("--jail-dir=" + jail_dir);
      argv.push_back("--jail-share=" + plan.out_dir);
    }

    base::UniqueFd log(::open(worker_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!log.valid()) {
      return base::ErrnoToStatus(errno, "bake: create " + worker_log);
    }
    report(BakeProgress::Stage::kBoot, "starting worker");
    const absl::Time t_boot = absl::Now();
    const absl::Time ready_deadline =
        std::min(plan.deadline, t_boot + absl::Milliseconds(plan.readiness.deadline_ms));
    SM_ASSIGN_OR_RETURN(base::ChildProcess child,
                        base::ChildProcess::Spawn({.argv = argv, .stdout_fd = log.get(),
                                                   .stderr_fd = log.get(), .new_session = true}));
    child_ = &child;
    absl::Cleanup forget = [&] { child_ = nullptr; };
    agent::AgentClient client(
        std::make_unique<agent::HybridVsockDialer>(vsock, agent::protocol::kAgentPort));

    // 1. The agent answers (boot).
    BootTimings t;
    for (;;) {
      SM_RETURN_IF_ERROR(CheckWorker("before the guest agent answered"));
      absl::StatusOr<agent::PingInfo> ping =
          client.WaitForAgent(std::min(ready_deadline, absl::Now() + kPollSlice));
      if (ping.ok()) {
        t.agent_version = ping->agent_version;
        break;
      }
      if (absl::Now() >= ready_deadline) {
        return DeadlineError("the guest agent did not answer", plan);
      }
    }
    t.boot_ms = MsSince(t_boot);

    // 2. Readiness.
    const absl::Time t_ready = absl::Now();
    report(BakeProgress::Stage::kReady,
           absl::StrCat("agent up after ", t.boot_ms, " ms; waiting for readiness (",
                        ToString(plan.readiness), ")"));
    SM_RETURN_IF_ERROR(WaitReadiness(client, plan, ready_deadline));
    t.ready_ms = MsSince(t_ready);

    // 3. Snapshot, then stop the worker (the snapshot leaves the VM paused).
    report(BakeProgress::Stage::kSnapshot, "taking the snapshot");
    const absl::Time t_snap = absl::Now();
    const absl::Time snap_deadline = std::min(plan.deadline, absl::Now() + absl::Minutes(5));
    absl::StatusOr<std::string> reply =
        vm::WorkerControlOk(control, "snapshot " + plan.out_dir, snap_deadline);
    if (!reply.ok()) {
      return WithConsole(reply.status(), "snapshot failed");
    }
    t.snapshot_ms = MsSince(t_snap);
    vm::WorkerControl(control, "exit", absl::Now() + absl::Seconds(5)).IgnoreError();
    if (!child.WaitFor(absl::Seconds(5)).ok()) {
      child.Terminate(absl::Seconds(2)).IgnoreError();
    }
    return t;
  }

 private:
  absl::Status CheckWorker(const std::string& when) {
    std::optional<base::ExitStatus> exit = child_->TryWait();
    if (!exit.has_value()) {
      return absl::OkStatus();
    }
    return WithConsole(absl::FailedPreconditionError(absl::StrCat(
                           "the worker ", exit->ToString(), " ", when)),
                       "");
  }

  absl::Status DeadlineError(const std::string& what, const BootPlan& plan) {
    return WithConsole(
        absl::DeadlineExceededError(absl::StrCat(
            what, " within the readiness deadline (", plan.readiness.deadline_ms,
            " ms, or the bake's own deadline); raise it with readiness ...,deadline=MS")),
        "");
  }

  absl::Status WithConsole(const absl::Status& st, const std::string& prefix) {
    std::string tail = FileTail(console_, kConsoleTailLines);
    std::string msg = prefix.empty() ? std::string(st.message())
                                     : absl::StrCat(prefix, ": ", st.message());
    if (tail.empty()) {
      // Nothing from the guest: the worker's own stderr says why (bad disk, KVM error, ...).
      const std::string worker_tail = FileTail(worker_log_, 20);
      if (!worker_tail.empty()) {
        absl::StrAppend(&msg, "\n--- the guest console is empty; worker output ---\n",
                        worker_tail);
      }
    } else {
      // No path: the console log lives in the bake's temp dir, which a failure removes.
      absl::StrAppend(&msg, "\n--- last ", kConsoleTailLines, " lines of the guest console ---\n",
                      tail);
    }
    return absl::Status(st.code(), msg);
  }

  // The workload exited (seen through the agent, which keeps the exit for WaitExit).
  std::optional<agent::WorkloadExitInfo> ExitedYet(const agent::AgentClient& client) {
    absl::StatusOr<agent::WorkloadExitInfo> e =
        client.WaitExit(absl::Now() + absl::Milliseconds(100));
    if (e.ok()) {
      return *e;
    }
    return std::nullopt;
  }

  absl::Status ExitedBeforeReady(const agent::WorkloadExitInfo& e) {
    return WithConsole(absl::FailedPreconditionError(absl::StrCat(
                           "the workload ", e.status.ToString(), " before it was ready")),
                       "");
  }

  absl::Status WaitReadiness(const agent::AgentClient& client, const BootPlan& plan,
                             absl::Time deadline) {
    const Readiness& r = plan.readiness;
    const absl::Time start = absl::Now();
    switch (r.mode) {
      case Readiness::Mode::kParked:
        // launch.json says "start": "restore": the agent holds the workload unstarted (volumes
        // unmounted) and says so; a workload that ran anyway must have exited.
        for (;;) {
          SM_RETURN_IF_ERROR(CheckWorker("before the workload was parked"));
          absl::StatusOr<absl::Duration> ok = client.WaitReady(
              agent::ReadyCondition::Parked(), std::min(deadline, absl::Now() + kPollSlice));
          if (ok.ok()) {
            return absl::OkStatus();
          }
          if (ok.status().code() == absl::StatusCode::kInvalidArgument) {
            return WithConsole(absl::FailedPreconditionError(absl::StrCat(
                                   "the guest agent cannot report a parked workload (",
                                   ok.status().message(), "); rebuild the guest agent")),
                               "");
          }
          if (absl::Now() >= deadline) {
            return DeadlineError("the workload was not parked", plan);
          }
        }
      case Readiness::Mode::kAfter: {
        const absl::Time until = std::min(deadline, start + absl::Milliseconds(r.after_ms));
        while (absl::Now() < until) {
          SM_RETURN_IF_ERROR(CheckWorker("while the bake waited"));
          if (auto e = ExitedYet(client)) {
            return ExitedBeforeReady(*e);
          }
          absl::SleepFor(std::min(kPollSlice, until - absl::Now()));
        }
        return absl::Now() >= deadline && until == deadline
                   ? DeadlineError("after=" + std::to_string(r.after_ms) + " did not pass", plan)
                   : absl::OkStatus();
      }
      case Readiness::Mode::kExit:
        for (;;) {
          SM_RETURN_IF_ERROR(CheckWorker("before the workload exited"));
          absl::StatusOr<agent::WorkloadExitInfo> e =
              client.WaitExit(std::min(deadline, absl::Now() + kPollSlice));
          if (e.ok()) {
            if (!e->status.success()) {
              return WithConsole(absl::FailedPreconditionError(absl::StrCat(
                                     "readiness 'exit': the workload ", e->status.ToString())),
                                 "");
            }
            return absl::OkStatus();
          }
          if (absl::Now() >= deadline) {
            return DeadlineError("the workload did not exit", plan);
          }
        }
      case Readiness::Mode::kListener: {
        const absl::Time fallback_at = r.fallback_ms == 0
                                           ? absl::InfiniteFuture()
                                           : start + absl::Milliseconds(r.fallback_ms);
        for (;;) {
          SM_RETURN_IF_ERROR(CheckWorker("before the workload listened"));
          const absl::Time slice_end = std::min({deadline, fallback_at, absl::Now() + kPollSlice});
          absl::StatusOr<absl::Duration> ok =
              client.WaitReady(agent::ReadyCondition::ListenerPort(plan.guest_port), slice_end);
          if (ok.ok()) {
            absl::SleepFor(absl::Milliseconds(r.settle_ms));
            if (auto e = ExitedYet(client)) {
              return ExitedBeforeReady(*e);
            }
            return absl::OkStatus();
          }
          if (auto e = ExitedYet(client)) {
            return ExitedBeforeReady(*e);
          }
          if (absl::Now() >= fallback_at) {
            return absl::OkStatus();  // upstream's fallback: snapshot anyway
          }
          if (absl::Now() >= deadline) {
            return DeadlineError(
                absl::StrCat("no listener on guest port ", plan.guest_port, " appeared"), plan);
          }
        }
      }
    }
    return absl::InternalError("unknown readiness mode");
  }

  std::string worker_;
  std::string kernel_;
  base::ChildProcess* child_ = nullptr;  // the worker of this run, while it runs
  std::string console_;
  std::string worker_log_;
  const bool balloon_;
  const uint64_t console_max_bytes_;
  const bool jail_;
};

class WorkerBooter final : public VmBooter {
 public:
  WorkerBooter(std::string worker, std::string kernel, bool balloon, uint64_t console_max_bytes,
               bool jail)
      : worker_(std::move(worker)), kernel_(std::move(kernel)), balloon_(balloon),
        console_max_bytes_(console_max_bytes), jail_(jail) {}
  absl::StatusOr<BootTimings> BootAndSnapshot(const BootPlan& plan,
                                              const ProgressFn& progress) override {
    return WorkerRun(worker_, kernel_, balloon_, console_max_bytes_, jail_)
        .BootAndSnapshot(plan, progress);
  }

 private:
  const std::string worker_;
  const std::string kernel_;
  const bool balloon_;
  const uint64_t console_max_bytes_;
  const bool jail_;
};

}  // namespace

std::string FileTail(const std::string& path, size_t lines) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return "";
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return "";
  }
  constexpr off_t kMaxTail = off_t{64} * 1024;
  const off_t start = st.st_size > kMaxTail ? st.st_size - kMaxTail : 0;
  std::string data(static_cast<size_t>(st.st_size - start), '\0');
  const ssize_t n = ::pread(fd.get(), data.data(), data.size(), start);
  if (n <= 0) {
    return "";
  }
  data.resize(static_cast<size_t>(n));
  while (!data.empty() && data.back() == '\n') {
    data.pop_back();
  }
  std::vector<absl::string_view> all = absl::StrSplit(data, '\n');
  if (all.size() > lines) {
    all.erase(all.begin(), all.end() - static_cast<std::ptrdiff_t>(lines));
  }
  return absl::StrJoin(all, "\n");
}

std::shared_ptr<VmBooter> MakeWorkerBooter(std::string worker_path, std::string kernel_path,
                                           bool balloon, uint64_t console_max_bytes, bool jail) {
  return std::make_shared<WorkerBooter>(std::move(worker_path), std::move(kernel_path), balloon,
                                        console_max_bytes, jail);
}

}  // namespace supermachine::bake
