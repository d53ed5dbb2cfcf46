// File: guest-agent/rpc/restore_hook.h
// What the agent does when the host says a snapshot was just restored into this VM (the
// `restored` operation): every clone of a snapshot wakes with the same RNG state, clock and
// identity, so the host hands each one fresh entropy, the time and its identity. The privileged
// syscalls sit behind `System` so host tests check what would be done without root.
#pragma once

#include <cstdint>
#include <string>

#include "proto/agent.pb.h"

namespace supermachine::agent::rpc {

// The syscalls of the restore hook. Each returns 0 or -errno.
class System {
 public:
  virtual ~System() = default;
  // RNDADDENTROPY on /dev/random, crediting 8 bits per byte.
  virtual int AddEntropy(const std::string& bytes) = 0;
  // RNDRESEEDCRNG (Linux ≥ 4.17); -ENOTTY/-EINVAL where the kernel lacks it.
  virtual int ReseedCrng() = 0;
  // clock_settime(CLOCK_REALTIME).
  virtual int SetWallClock(int64_t unix_ns) = 0;
  virtual int SetHostname(const std::string& hostname) = 0;
};

// The real syscalls (a process-lifetime singleton without state).
System* RealSystem();

struct RestoreResult {
  int code = 0;  // 0, or an absl::StatusCode value for Error.code.
  std::string message;
};

// Applies a RestoredRequest: entropy and reseed first (so nothing after runs on the cloned RNG
// state), then the clock, hostname (+ <root>/etc/hostname), <root>/etc/machine-id,
// <root>/run/supermachine/vm-id, and last <root>/run/supermachine/generation, whose presence
// tells anyone in the guest that the restore was fully handled. Empty/zero fields are skipped.
RestoreResult ApplyRestore(const v1::RestoredRequest& request, System* system,
                           const std::string& root_dir);

}  // namespace supermachine::agent::rpc
