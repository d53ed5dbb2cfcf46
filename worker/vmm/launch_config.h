// File: launch_config.h
// The worker's launch config: from flags (CLI11) or a JSON file (nlohmann-json), validated
// before anything is created so bad input fails with a clear message and no vCPU runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::vmm {

struct DiskConfig {
  std::string path;
  bool read_only = false;
  std::string id;  // GET_ID string; defaults to "disk<N>".
  bool operator==(const DiskConfig&) const = default;
};

enum class SerialKind { kStdout, kFile, kFd, kNone };
// kFile's default size bound per file (--serial-max-bytes): at most two files (PATH and
// PATH.1, worker/vmm/rotating_log.h), so 16 MiB of console on disk per VM.
inline constexpr uint64_t kDefaultSerialMaxBytes = uint64_t{8} << 20;
struct SerialConfig {
  SerialKind kind = SerialKind::kStdout;
  std::string path;  // kFile
  int fd = -1;       // kFd (inherited, not owned)
  // kFile only: rotate PATH to PATH.1 before it would grow past this; 0 = unbounded.
  uint64_t max_bytes = kDefaultSerialMaxBytes;
  bool operator==(const SerialConfig&) const = default;
};

// virtio-vsock with the host end on Unix sockets (docs/worker.md "vsock").
struct VsockConfig {
  std::string path;  // Listening socket; empty: no vsock device.
  uint32_t guest_cid = 3;
  // Restore only (from VsockDeviceState.next_host_port, never a flag): where host-initiated
  // connections' ports start; 0 is the device's default.
  uint32_t first_host_port = 0;
  bool operator==(const VsockConfig&) const = default;
};
inline constexpr uint32_t kDefaultVsockCid = 3;
// "<path>_<port>" must fit sockaddr_un.sun_path (108 bytes with its NUL).
inline constexpr size_t kMaxVsockPath = 96;

// virtio-net with a per-VM passt (docs/networking.md).
struct NetConfig {
  bool enabled = false;
  std::string mac;     // "" : random, locally administered, per worker process.
  std::string egress;  // Egress policy text (worker/net/egress_policy.h); "" = deny_private.
  // Extra passt options (--passt-arg), e.g. "--netns-only" where passt cannot create a user
  // namespace (a chroot); docs/networking.md.
  std::vector<std::string> passt_args;
  bool operator==(const NetConfig&) const = default;
};

inline constexpr absl::string_view kDefaultCmdline = "console=ttyS0 reboot=t panic=-1";
inline constexpr uint32_t kDefaultMemMib = 256;
// Below this the kernel cannot even unpack itself next to our boot structures.
inline constexpr uint32_t kMinMemMib = 32;
inline constexpr uint32_t kMaxDisks = 120;  // kMaxVirtioDevices minus rng and future devices.

struct LaunchConfig {
  std::string kernel;
  std::string cmdline = std::string(kDefaultCmdline);
  uint32_t mem_mib = kDefaultMemMib;
  uint32_t vcpus = 1;
  std::vector<DiskConfig> disks;
  SerialConfig serial;
  VsockConfig vsock;
  NetConfig net;
  bool rng = true;
  // virtio-balloon with free page reporting (docs/balloon.md): freed guest pages go back to the
  // host. Off by default; the device sits after every other one so no slot moves.
  bool balloon = false;
  // KSM (docs/memory.md): mark guest RAM MADV_MERGEABLE so the kernel may merge identical
  // pages across VMs. Off by default (CPU cost, cross-VM side channels). Only private RAM can
  // merge: a restored VM's; a booted VM's RAM is a shared memfd, which KSM skips.
  bool ksm = false;
  // Use the ELF's PVH entry when it has one (else the 64-bit Linux entry).
  bool pvh = true;
  // Guest identity for snapshots (docs/snapshot.md): recorded when booting, required to match
  // when restoring. Empty kernel_sha256 at boot: the worker hashes the kernel file at the
  // first snapshot. Empty at restore: any.
  std::string kernel_sha256;  // --kernel-sha256 HEX (64 lowercase hex digits)
  std::string agent_version;  // --agent-version STRING
};

// "path" or "path,ro" / "path,rw" (also "path,ro,id=NAME").
absl::StatusOr<DiskConfig> ParseDiskSpec(absl::string_view spec);
// "passt[,mac=MAC][,egress=POLICY]": egress= comes last, its value runs to the end (CIDR
// lists contain commas). MAC and policy are validated here.
absl::StatusOr<NetConfig> ParseNetSpec(absl::string_view spec);
// "stdout", "none", "file:PATH", "fd:N".
absl::StatusOr<SerialConfig> ParseSerialSpec(absl::string_view spec);
// {"kernel": ..., "cmdline": ..., "mem_mib": N, "vcpus": N, "disks": [{"path":..,"read_only":..}],
//  "serial": "stdout", "vsock": {"path": PATH, "cid": N} (or "vsock": PATH), "rng": true,
//  "balloon": false, "ksm": false, "serial_max_bytes": N,
//  "net": "passt,mac=..,egress=.." (or {"backend": "passt", "mac": .., "egress": ..}),
//  "pvh": true}. Unknown keys are errors (a typo must not be
// silently ignored).
absl::StatusOr<LaunchConfig> ParseLaunchConfigJson(absl::string_view json);

struct CommandLine {
  LaunchConfig config;
  std::string control_socket;  // --control PATH: the control socket (docs/snapshot.md).
  std::string restore_dir;     // --restore DIR: start from a snapshot instead of a kernel.
  bool vcpus_given = false;    // --vcpus was passed (a restore then insists on that count).
  bool help = false;  // --help: print `help_text`, exit 0.
  std::string help_text;
};
// Parses argv; `--config FILE` loads JSON first, then flags override it.
absl::StatusOr<CommandLine> ParseCommandLine(int argc, const char* const* argv);

// What the host allows, injected so tests need not depend on the machine.
struct HostLimits {
  uint64_t host_mem_bytes = 0;  // Physical RAM; guest memory must fit in it.
  uint32_t max_vcpus = 0;       // KVM_CAP_MAX_VCPUS (0: unknown, use our own limit).
};
HostLimits QueryHostLimits();

// Everything checkable without KVM: kernel exists and has a known format, memory within
// [kMinMemMib, host RAM), vCPUs within limits, disks openable with the requested access,
// device count, vsock path length and CID. Messages name the offending item and what to do.
absl::Status ValidateLaunchConfig(const LaunchConfig& config, const HostLimits& limits);

}  // namespace supermachine::vmm
