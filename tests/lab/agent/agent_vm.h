// File: agent_vm.h
// A booted guest with the real guest agent, for the agent lab tests and the agent benchmark:
// builds a delta disk (the guest-agent) and a busybox layer disk, both squashfs made
// by our own layer converter (sm_layer) from tars, boots them with supermachine-worker
// (`--vsock`), and waits until the agent answers a ping through the hybrid vsock socket.
// The boot contract it follows is docs/guest-boot.md: root=/dev/vda is the delta (boot root,
// agent at /.supermachine/agent), layers are disks found by id, the launch config comes inline
// on the kernel command line.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/agent/agent_client.h"
#include "tests/lab/support/kernel_dir.h"
#include "worker/base/child_process.h"

namespace supermachine::agent::lab {

// The guest kernel dir of this source tree (tests/lab/support/kernel_dir.h).
using supermachine::lab::KernelDir;

// Busybox applets the layer gets as symlinks (the tests and the bench use these).
const std::vector<std::string>& BusyboxApplets();

// Writes the busybox layer as an uncompressed tar: /bin/busybox + applet links, /etc/passwd,
// /etc/group, empty /root /tmp /proc /sys /dev /run. Also used to unpack a crun bundle.
absl::Status WriteBusyboxLayerTar(const std::string& tar_path, const std::string& busybox_bin);

// Populates `dir` with the same tree as the busybox layer (for the crun peer's rootfs).
absl::Status WriteBusyboxTree(const std::string& dir, const std::string& busybox_bin);

struct AgentVmOptions {
  std::string work_dir;       // Disks, sockets and logs go here (must exist, short path).
  std::string name = "vm";    // Names this VM's socket and logs in work_dir.
  std::string worker_bin;     // supermachine-worker.
  std::string agent_bin;      // guest-agent (static).
  std::string kernel;         // vmlinux.
  std::string busybox_bin = "/bin/busybox";  // Static.
  uint32_t vcpus = 2;
  uint32_t mem_mib = 512;
  std::vector<std::string> workload_argv = {"/bin/sleep", "1000000"};
  absl::Duration boot_timeout = absl::Seconds(240);
  // More worker flags, after the generated ones (Boot: e.g. an extra --disk; Restore: e.g.
  // per-clone --disk copies).
  std::vector<std::string> extra_args;
};

class AgentVm {
 public:
  // Builds the disks (once per work_dir), starts the worker and waits for the agent.
  static absl::StatusOr<std::unique_ptr<AgentVm>> Boot(const AgentVmOptions& options);
  // Starts a worker from a snapshot `dir` (docs/snapshot.md) and waits for the agent. Uses
  // options.work_dir, name, worker_bin and boot_timeout; the rest comes from the snapshot.
  static absl::StatusOr<std::unique_ptr<AgentVm>> Restore(const AgentVmOptions& options,
                                                          const std::string& dir);
  ~AgentVm();

  const AgentClient& client() const { return *client_; }
  const std::string& vsock_path() const { return vsock_path_; }
  pid_t worker_pid() const { return worker_->pid(); }
  // The guest console and the worker's stderr so far (for failure messages).
  std::string Diagnostics() const;
  // Snapshots the running VM into `dir` through the worker's control socket, then resumes it.
  absl::Status Snapshot(const std::string& dir);
  // Asks the agent to power off and waits for the worker to exit; kills it after `timeout`.
  absl::StatusOr<base::ExitStatus> Shutdown(absl::Duration timeout);

 private:
  AgentVm() = default;
  // Spawns the worker with `args` (after the per-VM console, vsock and control flags) and
  // waits until the agent answers.
  static absl::StatusOr<std::unique_ptr<AgentVm>> Start(const AgentVmOptions& options,
                                                        const std::vector<std::string>& args);

  std::string serial_path_;
  std::string stderr_path_;
  std::string vsock_path_;
  std::string control_path_;
  std::unique_ptr<base::ChildProcess> worker_;
  std::unique_ptr<AgentClient> client_;
};

}  // namespace supermachine::agent::lab
