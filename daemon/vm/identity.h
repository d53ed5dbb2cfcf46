// File: identity.h
// A clone's fresh identity for the agent's Restored hook (docs/snapshot.md, issue 7): every
// restored VM gets its own entropy seed, machine-id and VM id, so two clones of one snapshot
// never share /dev/urandom output or /etc/machine-id.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace supermachine::vm {

// `n` bytes from getrandom(2) (blocking until the host pool is initialised).
absl::StatusOr<std::string> RandomBytes(size_t n);

// 32 lowercase hex digits (a systemd machine-id / a VM id).
absl::StatusOr<std::string> RandomHexId();

}  // namespace supermachine::vm
