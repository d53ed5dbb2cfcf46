// File: snapshot_name.h
// Snapshot names: the default derived from an image ref, and the rule every name follows (it
// becomes a directory under the snapshots dir and the store's key).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace supermachine::bake {

// Longest name we derive (upstream's 60 characters).
inline constexpr size_t kDerivedNameMaxChars = 60;
// Longest name we accept (daemon/api keys on it; a path component may be 255 bytes).
inline constexpr size_t kMaxSnapshotNameBytes = 255;

// Upstream's sanitized_snapshot_name: the image text exactly as given, with ':', '/' and '.'
// each replaced by '_', cut to its first 60 characters (code points, so a UTF-8 character in a
// local path is never split). "redis:7" → "redis_7", "ghcr.io/a/b:1.2" → "ghcr_io_a_b_1_2".
// The text is not normalised: "redis" and "docker.io/library/redis" name different snapshots,
// as upstream.
std::string DefaultSnapshotName(absl::string_view image);

// 1–255 bytes, no '/', NUL or newline, not starting with '.' (the bake's temp dirs are
// ".tmp-*" beside the snapshots; "." and ".." are thereby excluded too).
absl::Status CheckSnapshotName(absl::string_view name);

}  // namespace supermachine::bake
