// File: seccomp_filter.h
// Builds a seccomp-bpf program from a SeccompPolicy with libseccomp and installs it on every
// thread of the calling process (TSYNC). The worker installs it after its VM is built and right
// before the first KVM_RUN, so a guest that takes over device emulation finds only the calls a
// running VMM needs (docs/seccomp.md). After Firecracker's seccompiler + resources/seccomp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/jail/seccomp_policy.h"

namespace supermachine::jail {

enum class SeccompMode {
  kOff,
  // A call outside the allowlist kills the whole process with SIGSYS (SCMP_ACT_KILL_PROCESS);
  // the kernel's audit log names the call (dmesg: "audit: type=1326 ... syscall=N").
  kKill,
  // For diagnosis (--seccomp=trap): the call is not made; a SIGSYS handler writes
  // "seccomp violation: syscall N (name)" to stderr and the process then dies by SIGSYS too.
  kTrap,
};

// "on" (kKill), "off", "trap"; anything else is an error naming the choices.
absl::StatusOr<SeccompMode> ParseSeccompMode(absl::string_view text);
const char* SeccompModeName(SeccompMode mode);

// The libseccomp name of x86_64 syscall `nr`, or "unknown".
std::string SyscallName(int nr);

// The process-wide filter, not yet loaded. Move-only owner of the libseccomp context.
class SeccompFilter {
 public:
  // Fails on a syscall name libseccomp does not know, so a typo cannot silently drop a rule.
  static absl::StatusOr<SeccompFilter> Build(const SeccompPolicy& policy, SeccompMode mode);
  SeccompFilter(SeccompFilter&& other) noexcept;
  SeccompFilter& operator=(SeccompFilter&& other) noexcept;
  SeccompFilter(const SeccompFilter&) = delete;
  SeccompFilter& operator=(const SeccompFilter&) = delete;
  ~SeccompFilter();

  // The BPF program as the kernel will get it (struct sock_filter array bytes), for tests.
  absl::StatusOr<std::vector<uint8_t>> ExportBpf() const;
  // Sets no_new_privs, installs the SIGSYS reporter in kTrap mode, and loads the filter on all
  // threads. Irreversible.
  absl::Status Load();

 private:
  SeccompFilter(void* ctx, SeccompMode mode) : ctx_(ctx), mode_(mode) {}
  void* ctx_ = nullptr;  // scmp_filter_ctx
  SeccompMode mode_ = SeccompMode::kOff;
};

// WorkerRunPolicy() built and loaded in `mode`; kOff does nothing.
absl::Status InstallWorkerSeccomp(SeccompMode mode);

}  // namespace supermachine::jail
