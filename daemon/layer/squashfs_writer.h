// File: squashfs_writer.h
// Writes one squashfs image with libsquashfs: file data is streamed into the block processor
// (data blocks + fragments, compressed by worker threads) as it arrives; inodes, directories,
// fragment/ID/xattr tables and the super block are written by Finish() from a LayerTree.
#pragma once

#include <sqfs/block_processor.h>
#include <sqfs/block_writer.h>
#include <sqfs/compressor.h>
#include <sqfs/frag_table.h>
#include <sqfs/id_table.h>
#include <sqfs/io.h>
#include <sqfs/meta_writer.h>
#include <sqfs/super.h>
#include <sqfs/xattr_writer.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/layer/layer_tree.h"
#include "daemon/layer/sqfs_handles.h"

namespace supermachine::layer {

struct SquashfsWriterOptions {
  uint32_t block_size = 128 * 1024;  // squashfs data block size (4 KiB .. 1 MiB, power of 2).
  int zstd_level = 15;               // mksquashfs' and libsquashfs' default zstd level.
  uint32_t num_workers = 1;          // Compression threads.
  uint32_t max_backlog = 0;          // Blocks in flight; 0 = 10 per worker. Bounds memory.
};

class SquashfsWriter {
 public:
  // Writes to `fd` (borrowed; an empty file) and starts the image (super block placeholder).
  static absl::StatusOr<std::unique_ptr<SquashfsWriter>> Create(int fd,
                                                                const SquashfsWriterOptions& opts);

  // Streams a regular file's data. Between BeginFile and EndFile only Append may be called.
  absl::Status BeginFile(LayerInode* inode);
  absl::Status Append(const void* data, size_t size);
  absl::Status EndFile();

  // Waits for the data blocks, writes inodes, directories and tables of `tree`, then the
  // super block, and pads to 4 KiB. Returns the image size in bytes.
  absl::StatusOr<uint64_t> Finish(LayerTree& tree);

  // Uncompressed file bytes fed so far.
  uint64_t data_bytes_in() const;
  // errno of the first failed write to the image (0: none): ENOSPC behind a libsquashfs
  // "input/output error".
  int write_errno() const;

  // After a failure (no Finish), drains the blocks still queued in the worker pool: libsquashfs
  // 1.2 frees its own queues on destroy but not blocks handed to the pool, which would leak.
  ~SquashfsWriter();
  SquashfsWriter(const SquashfsWriter&) = delete;
  SquashfsWriter& operator=(const SquashfsWriter&) = delete;

 private:
  SquashfsWriter() = default;
  absl::Status WriteInode(LayerInode* node, uint32_t parent_inode_num);

  SqfsPtr<sqfs_file_t> file_;
  SqfsPtr<sqfs_compressor_t> compressor_;
  SqfsPtr<sqfs_compressor_t> uncompressor_;
  SqfsPtr<sqfs_block_writer_t> block_writer_;
  SqfsPtr<sqfs_frag_table_t> frag_table_;
  SqfsPtr<sqfs_id_table_t> id_table_;
  SqfsPtr<sqfs_xattr_writer_t> xattr_writer_;
  SqfsPtr<sqfs_meta_writer_t> inode_writer_;
  SqfsPtr<sqfs_meta_writer_t> dir_meta_writer_;
  SqfsPtr<sqfs_dir_writer_t> dir_writer_;
  // Declared last so it is destroyed first: its worker threads use the objects above.
  SqfsPtr<sqfs_block_processor_t> block_processor_;
  sqfs_super_t super_{};
  uint32_t block_size_ = 0;
  bool finished_ = false;
};

}  // namespace supermachine::layer
