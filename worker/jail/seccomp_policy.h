// File: seccomp_policy.h
// The worker's seccomp allowlist as plain data: which syscalls (by name) and which ioctl
// request numbers a worker may use once its VM is built, i.e. from the first KVM_RUN on. Data,
// not a filter, so tests can inspect it and docs/seccomp.md can be checked against it; the
// filter is built from it in seccomp_filter.h. After Firecracker's resources/seccomp/*.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace supermachine::jail {

struct SyscallRule {
  std::string name;  // As libseccomp spells it ("read", "epoll_pwait").
  // Only for socket(2): when non-negative, the first argument (domain) must equal it.
  int64_t arg0_equals = -1;
};

struct IoctlRule {
  uint32_t request;  // The ioctl request number, compared on its low 32 bits (the kernel's cmd).
  std::string name;  // For docs and the audit line.
};

struct SeccompPolicy {
  std::vector<SyscallRule> syscalls;  // Allowed with any arguments (except socket's domain).
  std::vector<IoctlRule> ioctls;      // ioctl(2) allowed only with these requests.
};

// The worker's run-time policy (docs/seccomp.md lists it with the reason for each entry).
SeccompPolicy WorkerRunPolicy();

}  // namespace supermachine::jail
