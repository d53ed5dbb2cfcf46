// File: state_file.h
// The snapshot state file: a fixed header (magic, format major.minor, payload length, SHA-256
// of the payload) followed by a serialized supermachine.snapshot.v1.SnapshotState. Loading
// checks, in this order, the size limit, magic, major version (equal), minor version (not
// newer than ours), length (truncation) and checksum, before the payload is parsed — after
// Firecracker src/vmm/src/snapshot/mod.rs. Every failure says what is wrong and what to do.
// docs/snapshot.md has the byte layout.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/snapshot.pb.h"

namespace supermachine::snapshot {

// `v1` below is the proto package supermachine.snapshot.v1, nested in this namespace.

// "SMSNAPST": a supermachine snapshot state file.
inline constexpr char kStateMagic[8] = {'S', 'M', 'S', 'N', 'A', 'P', 'S', 'T'};
inline constexpr uint16_t kFormatMajor = 1;
inline constexpr uint16_t kFormatMinor = 2;  // 1: DeviceState.net. 2: DeviceState.balloon.
// magic(8) major(2) minor(2) flags(4) payload length(8) sha256(32).
inline constexpr size_t kStateHeaderSize = 56;
// A state holds registers and device state, never RAM: even 256 vCPUs stay far below this.
inline constexpr uint64_t kMaxStatePayload = 64ull << 20;

// The file bytes for `state` (format_major/minor in the payload are set to ours).
std::string EncodeStateFile(v1::SnapshotState state);
// Checks and parses file bytes. `source` names them in errors (the path).
absl::StatusOr<v1::SnapshotState> DecodeStateFile(absl::string_view bytes,
                                                  absl::string_view source);

// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
// fsync of the directory. A crash leaves either the old file or the new one, never half.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes);

absl::Status WriteStateFile(const std::string& path, const v1::SnapshotState& state);
absl::StatusOr<v1::SnapshotState> ReadStateFile(const std::string& path);

}  // namespace supermachine::snapshot
