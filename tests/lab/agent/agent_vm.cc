// File: agent_vm.cc
// Disk images (tar → sm_layer squashfs), the worker process and the wait for the agent.
#include "tests/lab/agent/agent_vm.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "daemon/agent/dialer.h"
#include "daemon/layer/converter.h"
#include "daemon/vm/worker_control.h"
#include "guest-agent/protocol/frame.h"
#include "tests/unit/layer/tar_builder.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::agent::lab {
namespace {

namespace fs = std::filesystem;
namespace lt = ::supermachine::layer::testing;

absl::StatusOr<std::string> Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string SlurpOrEmpty(const std::string& path) {
  auto s = Slurp(path);
  return s.ok() ? *s : std::string();
}

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
constexpr char kGroup[] = "root:x:0:\nnogroup:x:65534:\n";
constexpr const char* kEmptyDirs[] = {"dev", "proc", "sys", "tmp", "run", "root", "etc", "bin"};

absl::Status Convert(const std::string& tar, const std::string& sqfs) {
  if (fs::exists(sqfs)) {
    return absl::OkStatus();  // Built by an earlier boot in the same work dir.
  }
  absl::StatusOr<layer::ConvertStats> stats = layer::ConvertLayer(tar, sqfs, {.num_workers = 1});
  return stats.ok() ? absl::OkStatus() : base::Annotate(stats.status(), "convert " + tar);
}

}  // namespace

const std::vector<std::string>& BusyboxApplets() {
  static const std::vector<std::string> applets = {
      "sh",   "ash",  "cat",    "echo",  "true",      "false", "sleep", "kill", "tty",
      "stty", "nc",   "sha256sum", "stat", "ls",     "mkdir", "env",   "id",   "dd",
      "head", "wc",   "seq",    "yes",   "sync",      "ps",    "printf", "test", "timeout"};
  return applets;
}

absl::Status WriteBusyboxLayerTar(const std::string& tar_path, const std::string& busybox_bin) {
  SM_ASSIGN_OR_RETURN(std::string busybox, Slurp(busybox_bin));
  std::vector<lt::TarEntry> entries;
  for (const char* d : kEmptyDirs) {
    entries.push_back(lt::Dir(d));
  }
  entries.push_back(lt::Dir("root", {.perm = 0700}));
  entries.push_back(lt::File("bin/busybox", std::move(busybox), {.perm = 0755}));
  for (const auto& a : BusyboxApplets()) {
    entries.push_back(lt::Symlink("bin/" + a, "busybox"));
  }
  entries.push_back(lt::File("etc/passwd", kPasswd));
  entries.push_back(lt::File("etc/group", kGroup));
  return lt::WriteTar(tar_path, entries);
}

absl::Status WriteBusyboxTree(const std::string& dir, const std::string& busybox_bin) {
  std::error_code ec;
  for (const char* d : kEmptyDirs) {
    fs::create_directories(fs::path(dir) / d, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("mkdir ", dir, "/", d, ": ", ec.message()));
    }
  }
  fs::copy_file(busybox_bin, fs::path(dir) / "bin/busybox", fs::copy_options::overwrite_existing,
                ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("copy ", busybox_bin, ": ", ec.message()));
  }
  for (const auto& a : BusyboxApplets()) {
    fs::path link = fs::path(dir) / "bin" / a;
    fs::remove(link, ec);
    fs::create_symlink("busybox", link, ec);
  }
  std::ofstream(fs::path(dir) / "etc/passwd") << kPasswd;
  std::ofstream(fs::path(dir) / "etc/group") << kGroup;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<AgentVm>> AgentVm::Boot(const AgentVmOptions& o) {
  const fs::path dir(o.work_dir);
  // The delta (boot root): the agent and the mount points PID 1 needs before the pivot.
  const std::string boot_tar = (dir / "delta.tar").string();
  const std::string boot_sqfs = (dir / "delta.sqfs").string();
  if (!fs::exists(boot_sqfs)) {
    SM_ASSIGN_OR_RETURN(std::string agent, Slurp(o.agent_bin));
    std::vector<lt::TarEntry> entries;
    for (const char* d : {"dev", "proc", "sys", "tmp", "run", ".supermachine"}) {
      entries.push_back(lt::Dir(d));
    }
    entries.push_back(lt::File(".supermachine/agent", std::move(agent), {.perm = 0755}));
    SM_RETURN_IF_ERROR(lt::WriteTar(boot_tar, entries));
    SM_RETURN_IF_ERROR(Convert(boot_tar, boot_sqfs));
  }
  const std::string layer_tar = (dir / "busybox.tar").string();
  const std::string layer_sqfs = (dir / "busybox.sqfs").string();
  if (!fs::exists(layer_sqfs)) {
    SM_RETURN_IF_ERROR(WriteBusyboxLayerTar(layer_tar, o.busybox_bin));
    SM_RETURN_IF_ERROR(Convert(layer_tar, layer_sqfs));
  }

  // Launch config (docs/guest-boot.md), inline on the command line as base64 JSON.
  std::vector<std::string> quoted;
  for (const auto& a : o.workload_argv) {
    quoted.push_back(absl::StrCat("\"", a, "\""));
  }
  std::string launch = absl::StrCat(
      R"({"version":1,"argv":[)", absl::StrJoin(quoted, ","),
      R"(],"env":["PATH=/bin:/usr/bin:/sbin:/usr/sbin","HOME=/root"],"cwd":"/",)",
      R"("hostname":"agentlab","layers":["busybox"]})");
  std::string cmdline = absl::StrCat(
      "console=ttyS0 reboot=t panic=-1 quiet root=/dev/vda rootfstype=squashfs ro "
      "init=/.supermachine/agent "
      "supermachine.launch=",
      absl::Base64Escape(launch));

  std::vector<std::string> args = {
      "--kernel", o.kernel, "--mem-mib", std::to_string(o.mem_mib), "--vcpus",
      std::to_string(o.vcpus), "--disk", boot_sqfs + ",ro,id=delta", "--disk",
      layer_sqfs + ",ro,id=busybox", "--cmdline", cmdline};
  args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
  return Start(o, args);
}

absl::StatusOr<std::unique_ptr<AgentVm>> AgentVm::Restore(const AgentVmOptions& o,
                                                          const std::string& dir) {
  std::vector<std::string> args = {"--restore", dir};
  args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
  return Start(o, args);
}

absl::StatusOr<std::unique_ptr<AgentVm>> AgentVm::Start(const AgentVmOptions& o,
                                                        const std::vector<std::string>& args) {
  const fs::path dir(o.work_dir);
  auto vm = std::unique_ptr<AgentVm>(new AgentVm());
  const std::string& tag = o.name;
  vm->serial_path_ = (dir / (tag + ".console.log")).string();
  vm->stderr_path_ = (dir / (tag + ".worker.log")).string();
  vm->vsock_path_ = (dir / (tag + ".sock")).string();
  vm->control_path_ = (dir / (tag + ".control")).string();
  base::UniqueFd err(
      open(vm->stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!err.valid()) {
    return base::ErrnoToStatus(errno, "create " + vm->stderr_path_);
  }
  std::vector<std::string> argv = {o.worker_bin,  "--serial",  "file:" + vm->serial_path_,
                                   "--vsock",     vm->vsock_path_, "--control",
                                   vm->control_path_};
  argv.insert(argv.end(), args.begin(), args.end());
  SM_ASSIGN_OR_RETURN(base::ChildProcess child,
                      base::ChildProcess::Spawn({.argv = argv, .stderr_fd = err.get()}));
  vm->worker_ = std::make_unique<base::ChildProcess>(std::move(child));
  vm->client_ = std::make_unique<AgentClient>(
      std::make_unique<HybridVsockDialer>(vm->vsock_path_, protocol::kAgentPort));

  // Wait for the agent, but stop at once if the worker dies (a boot failure is on the console).
  const absl::Time deadline = absl::Now() + o.boot_timeout;
  while (true) {
    auto pong = vm->client_->WaitForAgent(std::min(deadline, absl::Now() + absl::Seconds(2)));
    if (pong.ok()) {
      return vm;
    }
    // The agent says on the console when it will never answer; no need to wait out the rest.
    const std::string console = SlurpOrEmpty(vm->serial_path_);
    if (console.find("supermachine-guest-agent: fatal:") != std::string::npos) {
      return absl::FailedPreconditionError(
          absl::StrCat("guest agent failed to boot:\n", vm->Diagnostics()));
    }
    if (console.find("listen=none") != std::string::npos) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the guest agent was built without its vsock server (guest-agent/rpc/ has no "
          "sm_agent_rpc target yet):\n",
          vm->Diagnostics()));
    }
    if (auto exited = vm->worker_->TryWait()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "worker ", exited->ToString(), " before the agent answered:\n", vm->Diagnostics()));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "agent did not answer within ", absl::FormatDuration(o.boot_timeout), ": ",
          pong.status().message(), "\n", vm->Diagnostics()));
    }
  }
}

std::string AgentVm::Diagnostics() const {
  return absl::StrCat("--- guest console (", serial_path_, ") ---\n", SlurpOrEmpty(serial_path_),
                      "--- worker stderr (", stderr_path_, ") ---\n", SlurpOrEmpty(stderr_path_));
}

absl::Status AgentVm::Snapshot(const std::string& dir) {
  const absl::Time deadline = absl::Now() + absl::Seconds(300);
  SM_RETURN_IF_ERROR(vm::WorkerControlOk(control_path_, "snapshot " + dir, deadline).status());
  return vm::WorkerControlOk(control_path_, "resume", deadline).status();
}

absl::StatusOr<base::ExitStatus> AgentVm::Shutdown(absl::Duration timeout) {
  absl::Status asked = client_->Shutdown(absl::Now() + absl::Seconds(30));
  absl::StatusOr<base::ExitStatus> st = worker_->WaitFor(timeout);
  if (!st.ok()) {
    (void)worker_->Terminate(absl::Seconds(5));
    return base::Annotate(st.status(), absl::StrCat("worker still running after shutdown (",
                                                    asked.ToString(), ")"));
  }
  return st;
}

AgentVm::~AgentVm() {
  if (worker_ && worker_->running()) {
    (void)worker_->Terminate(absl::Seconds(5));
  }
}

}  // namespace supermachine::agent::lab
