// File: converter.h
// OCI layer (tar, tar+gzip, tar+zstd) → squashfs (zstd), streamed in one pass without
// extracting to disk. OCI whiteouts become overlayfs whiteouts so the layers can be stacked
// with overlayfs in the guest: `.wh.NAME` → character device 0:0 NAME, `.wh..wh..opq` in D →
// D carries trusted.overlay.opaque=y.
//
// Lifecycle of the output: written to `<out>.tmp-XXXXXX` in the same directory, fsynced,
// re-opened and verified with libsquashfs, renamed over `<out>`, directory fsynced. On any
// error the temp file is removed and `<out>` is untouched.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/layer/media_type.h"

namespace supermachine::layer {

struct ConvertOptions {
  // Names the layer in error messages, e.g. its digest "sha256:ab12...". Defaults to the path.
  std::string layer_name;
  // Declared media type; when set, the detected compression must match it.
  std::string media_type;
  uint32_t block_size = 128 * 1024;
  int zstd_level = 15;
  // Compression threads; 0 = one per online CPU.
  uint32_t num_workers = 0;
  // Memory bound for the in-memory tree: more entries than this are refused.
  uint64_t max_entries = uint64_t{1} << 22;
  // Bound on the file bytes fed to the compressor, holes of sparse files included (a tiny
  // sparse tar can describe terabytes of zeros): more is refused with ResourceExhausted.
  uint64_t max_file_bytes = uint64_t{1} << 40;
};

struct ConvertStats {
  uint64_t entries = 0;           // tar headers read.
  uint64_t bytes_in = 0;          // bytes read from the layer blob (compressed).
  uint64_t bytes_uncompressed = 0;  // tar stream size after decompression.
  uint64_t bytes_out = 0;         // squashfs image size.
  uint64_t whiteouts = 0;         // `.wh.NAME` entries.
  uint64_t opaque_dirs = 0;       // `.wh..wh..opq` entries.
  uint64_t hard_links = 0;
  // xattrs squashfs cannot store (prefix other than user./trusted./security., e.g. system.*
  // ACLs) or that only overlayfs may set (trusted.overlay.*), dropped.
  uint64_t xattrs_dropped = 0;
  uint64_t aufs_entries_skipped = 0;  // `.wh..wh.*` other than `.wh..wh..opq` (aufs metadata).
  LayerCompression compression = LayerCompression::kNone;  // Detected.
  absl::Duration duration;
};

// Converts the layer blob at `input_path` into the squashfs image `output_path`.
// Errors (all name the layer and, where one is at fault, the entry):
//   InvalidArgument — unknown media type, compression not matching it, path traversal ('..'),
//     hard link to a target not earlier in the layer, disallowed entry type, bad whiteout,
//     parent that is not a directory, ids or sizes out of range;
//   DataLoss — corrupt or truncated tar / gzip / zstd stream;
//   ResourceExhausted — more than max_entries entries or max_file_bytes of file data;
//   errno-derived codes for I/O on the input or output.
absl::StatusOr<ConvertStats> ConvertLayer(const std::string& input_path,
                                          const std::string& output_path,
                                          const ConvertOptions& options);

}  // namespace supermachine::layer
