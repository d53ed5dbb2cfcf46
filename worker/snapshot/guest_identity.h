// File: guest_identity.h
// What the guest in a snapshot runs: the kernel's SHA-256 and the agent's version. Recorded
// at snapshot time; a restore whose caller names a kernel or agent refuses a snapshot of
// another, so a pool never hands out a clone of a guest it did not ask for (the kernel in the
// snapshot's RAM is what runs, whatever file the caller has now).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "proto/snapshot.pb.h"

namespace supermachine::snapshot {

// Lowercase hex SHA-256 of the file at `path` (as sha256sum prints it). Reads it in 1 MiB
// chunks; a 21 MiB vmlinux takes ~60 ms on the dev host (docs/snapshot.md).
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

struct ExpectedIdentity {
  std::string kernel_sha256;  // Empty: any kernel.
  std::string agent_version;  // Empty: any agent.
};

// FailedPrecondition naming both sides when `saved` differs from a non-empty expectation.
absl::Status CheckGuestIdentity(const ::supermachine::snapshot::v1::GuestIdentity& saved,
                                const ExpectedIdentity& expected);

}  // namespace supermachine::snapshot
