// File: flags.h
// The worker's sandbox flags, taken out of argv before the launch config parser sees the rest
// (the sandbox is process setup, not part of the VM's description):
//   --seccomp=on|off|trap   seccomp filter from the first KVM_RUN on (default: the environment's
//                           SM_WORKER_SECCOMP, else kBuiltinSeccompDefault; docs/seccomp.md)
//   --jail-dir=DIR          enter the jail (jail.h) in DIR after setup; off when absent
//   --uid=N --gid=N         with --jail-dir: run as this uid/gid from then on
//   --jail-share=DIR        with --jail-dir: DIR is also in the jail, at its own path and
//                           writable (repeatable); e.g. where a bake's snapshot is written
//   --cgroup=DIR            create and join this cgroup v2 directory first thing; its
//                           limits are written once the VM's size is known (cgroup.h)
// Both "--flag=value" and "--flag value" are accepted.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "absl/status/statusor.h"
#include "worker/jail/seccomp_filter.h"

namespace supermachine::jail {

// The filter is on unless told otherwise, except in AddressSanitizer builds: LeakSanitizer's
// check at exit calls prctl and ptrace, which the filter refuses, so every filtered ASan worker
// would die by SIGSYS as it exits (docs/seccomp.md "Default").
#if defined(__SANITIZE_ADDRESS__)
inline constexpr SeccompMode kBuiltinSeccompDefault = SeccompMode::kOff;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr SeccompMode kBuiltinSeccompDefault = SeccompMode::kOff;
#else
inline constexpr SeccompMode kBuiltinSeccompDefault = SeccompMode::kKill;
#endif
#else
inline constexpr SeccompMode kBuiltinSeccompDefault = SeccompMode::kKill;
#endif

struct SandboxFlags {
  SeccompMode seccomp = kBuiltinSeccompDefault;
  std::string jail_dir;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::string cgroup;
  std::vector<std::string> jail_shares;  // --jail-share, absolute paths
};

// The default seccomp mode when --seccomp is not given: SM_WORKER_SECCOMP's value ("on",
// "off", "trap") when set, so a whole test run can switch it (the lab passes SM_* through).
inline constexpr char kSeccompEnv[] = "SM_WORKER_SECCOMP";

// Removes the sandbox flags from `args` (args[0] is the program) and returns them.
// `env_seccomp` is the environment default (nullptr: unset).
absl::StatusOr<SandboxFlags> ExtractSandboxFlags(std::vector<std::string>& args,
                                                 const char* env_seccomp);

// Lines for --help.
const char* SandboxFlagsHelp();

}  // namespace supermachine::jail
