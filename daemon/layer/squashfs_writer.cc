// File: squashfs_writer.cc
// libsquashfs plumbing for one image, and serialisation of a LayerTree into inode and
// directory tables. Order matters: every directory entry needs its child's inode reference,
// so all non-directory inodes are written first, then directories children-before-parents.
#include "daemon/layer/squashfs_writer.h"

#include <sqfs/dir_writer.h>
#include <sqfs/inode.h>
#include <sys/stat.h>

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/layer/sqfs_fd_file.h"
#include "worker/base/status_macros.h"

namespace supermachine::layer {
namespace {

constexpr uint32_t kNoXattr = 0xFFFFFFFF;

absl::Status Check(int ret, absl::string_view what) {
  if (ret != 0) {
    return SqfsError(ret, what);
  }
  return absl::OkStatus();
}

// Inode type for a non-directory, non-regular mode (regular files come from the block
// processor, directories from the directory writer).
absl::StatusOr<sqfs_u16> SpecialInodeType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFLNK: return SQFS_INODE_SLINK;
    case S_IFCHR: return SQFS_INODE_CDEV;
    case S_IFBLK: return SQFS_INODE_BDEV;
    case S_IFIFO: return SQFS_INODE_FIFO;
    case S_IFSOCK: return SQFS_INODE_SOCKET;
    default: return absl::InternalError(absl::StrCat("unexpected inode mode 0", mode));
  }
}

// A zeroed inode with room for `extra` payload bytes, owned by a unique_ptr to bytes. Aligned
// by operator new[] (16 bytes), as libsquashfs' own calloc'd inodes are.
struct OwnedInode {
  std::unique_ptr<uint8_t[]> storage;
  sqfs_inode_generic_t* get() { return reinterpret_cast<sqfs_inode_generic_t*>(storage.get()); }
};
OwnedInode AllocInode(size_t extra) {
  OwnedInode inode{std::make_unique<uint8_t[]>(sizeof(sqfs_inode_generic_t) + extra)};
  return inode;
}

struct DirToWrite {
  LayerInode* dir;
  LayerInode* parent;  // nullptr for the root.
};

}  // namespace

absl::StatusOr<std::unique_ptr<SquashfsWriter>> SquashfsWriter::Create(
    int fd, const SquashfsWriterOptions& opts) {
  std::unique_ptr<SquashfsWriter> w(new SquashfsWriter());
  w->block_size_ = opts.block_size;
  SM_ASSIGN_OR_RETURN(w->file_, MakeSqfsFdFile(fd, 0));

  sqfs_compressor_config_t cfg;
  SM_RETURN_IF_ERROR(Check(sqfs_compressor_config_init(&cfg, SQFS_COMP_ZSTD, opts.block_size, 0),
                           "configure zstd compressor"));
  cfg.level = static_cast<sqfs_u32>(opts.zstd_level);
  sqfs_compressor_t* raw = nullptr;
  SM_RETURN_IF_ERROR(Check(sqfs_compressor_create(&cfg, &raw), "create zstd compressor"));
  w->compressor_.reset(raw);
  cfg.flags |= SQFS_COMP_FLAG_UNCOMPRESS;
  raw = nullptr;
  SM_RETURN_IF_ERROR(Check(sqfs_compressor_create(&cfg, &raw), "create zstd decompressor"));
  w->uncompressor_.reset(raw);

  SM_RETURN_IF_ERROR(Check(sqfs_super_init(&w->super_, opts.block_size, 0, SQFS_COMP_ZSTD),
                           "initialise super block"));
  SM_RETURN_IF_ERROR(Check(sqfs_super_write(&w->super_, w->file_.get()), "write super block"));
  int ret = w->compressor_->write_options(w->compressor_.get(), w->file_.get());
  if (ret < 0) {
    return SqfsError(ret, "write compressor options");
  }
  if (ret > 0) {
    w->super_.flags |= SQFS_FLAG_COMPRESSOR_OPTIONS;
  }

  w->block_writer_.reset(sqfs_block_writer_create(w->file_.get(), SQFS_DEVBLK_SIZE, 0));
  w->frag_table_.reset(sqfs_frag_table_create(0));
  w->id_table_.reset(sqfs_id_table_create(0));
  w->xattr_writer_.reset(sqfs_xattr_writer_create(0));
  w->inode_writer_.reset(sqfs_meta_writer_create(w->file_.get(), w->compressor_.get(), 0));
  // Directory blocks stay in memory until the inode table is complete: in squashfs the
  // directory table follows the inode table, but directories are produced interleaved.
  w->dir_meta_writer_.reset(sqfs_meta_writer_create(w->file_.get(), w->compressor_.get(),
                                                    SQFS_META_WRITER_KEEP_IN_MEMORY));
  if (!w->block_writer_ || !w->frag_table_ || !w->id_table_ || !w->xattr_writer_ ||
      !w->inode_writer_ || !w->dir_meta_writer_) {
    return absl::ResourceExhaustedError("allocating squashfs writer state");
  }
  w->dir_writer_.reset(sqfs_dir_writer_create(w->dir_meta_writer_.get(), 0));
  if (!w->dir_writer_) {
    return absl::ResourceExhaustedError("allocating squashfs directory writer");
  }

  sqfs_block_processor_desc_t desc;
  std::memset(&desc, 0, sizeof(desc));
  desc.size = sizeof(desc);
  desc.max_block_size = opts.block_size;
  desc.num_workers = opts.num_workers == 0 ? 1 : opts.num_workers;
  desc.max_backlog = opts.max_backlog == 0 ? 10 * desc.num_workers : opts.max_backlog;
  desc.cmp = w->compressor_.get();
  desc.wr = w->block_writer_.get();
  desc.tbl = w->frag_table_.get();
  // With file + decompressor, fragment deduplication compares real bytes, not just hashes.
  desc.file = w->file_.get();
  desc.uncmp = w->uncompressor_.get();
  sqfs_block_processor_t* proc = nullptr;
  SM_RETURN_IF_ERROR(
      Check(sqfs_block_processor_create_ex(&desc, &proc), "create squashfs block processor"));
  w->block_processor_.reset(proc);
  return w;
}

SquashfsWriter::~SquashfsWriter() {
  if (block_processor_ != nullptr && !finished_) {
    // Best effort: the image is being discarded; an error here only means blocks failed.
    sqfs_block_processor_sync(block_processor_.get());
  }
}

absl::Status SquashfsWriter::BeginFile(LayerInode* inode) {
  return Check(sqfs_block_processor_begin_file(block_processor_.get(), &inode->file_inode,
                                               nullptr, 0),
               "begin file data");
}

absl::Status SquashfsWriter::Append(const void* data, size_t size) {
  return Check(sqfs_block_processor_append(block_processor_.get(), data, size),
               "write file data");
}

absl::Status SquashfsWriter::EndFile() {
  return Check(sqfs_block_processor_end_file(block_processor_.get()), "end file data");
}

uint64_t SquashfsWriter::data_bytes_in() const {
  return sqfs_block_processor_get_stats(block_processor_.get())->input_bytes_read;
}

absl::Status SquashfsWriter::WriteInode(LayerInode* node, uint32_t parent_inode_num) {
  // xattrs first: the index decides between basic and extended inode forms.
  uint32_t xattr_index = kNoXattr;
  if (!node->xattrs.empty() || node->opaque) {
    sqfs_xattr_writer_t* xw = xattr_writer_.get();
    SM_RETURN_IF_ERROR(Check(sqfs_xattr_writer_begin(xw, 0), "begin xattr block"));
    for (const auto& [key, value] : node->xattrs) {
      SM_RETURN_IF_ERROR(Check(sqfs_xattr_writer_add(xw, key.c_str(), value.data(), value.size()),
                               absl::StrCat("store xattr '", key, "'")));
    }
    if (node->opaque) {
      // overlayfs: an opaque directory hides the same directory of all lower layers.
      SM_RETURN_IF_ERROR(Check(sqfs_xattr_writer_add(xw, "trusted.overlay.opaque", "y", 1),
                               "store opaque xattr"));
    }
    SM_RETURN_IF_ERROR(Check(sqfs_xattr_writer_end(xw, &xattr_index), "end xattr block"));
  }

  OwnedInode owned;
  SqfsMallocPtr<sqfs_inode_generic_t> from_library;
  sqfs_inode_generic_t* inode = nullptr;
  if (node->IsDir()) {
    sqfs_dir_writer_t* dw = dir_writer_.get();
    SM_RETURN_IF_ERROR(Check(sqfs_dir_writer_begin(dw, 0), "begin directory"));
    uint32_t subdirs = 0;
    for (const auto& [name, child] : node->children) {
      SM_RETURN_IF_ERROR(Check(sqfs_dir_writer_add_entry(dw, name.c_str(), child->inode_num,
                                                         child->inode_ref,
                                                         static_cast<sqfs_u16>(child->mode)),
                               absl::StrCat("add directory entry '", name, "'")));
      subdirs += child->IsDir() ? 1 : 0;
    }
    SM_RETURN_IF_ERROR(Check(sqfs_dir_writer_end(dw), "end directory"));
    from_library.reset(sqfs_dir_writer_create_inode(dw, 0, xattr_index, parent_inode_num));
    if (!from_library) {
      return absl::ResourceExhaustedError("allocating directory inode");
    }
    inode = from_library.get();
    // POSIX: "." and the parent's entry, plus each subdirectory's "..".
    if (inode->base.type == SQFS_INODE_DIR) {
      inode->data.dir.nlink = 2 + subdirs;
    } else {
      inode->data.dir_ext.nlink = 2 + subdirs;
    }
  } else if (node->IsRegular()) {
    if (node->file_inode == nullptr) {
      return absl::InternalError("regular file without data inode");
    }
    inode = node->file_inode;
    if (xattr_index != kNoXattr) {
      SM_RETURN_IF_ERROR(Check(sqfs_inode_set_xattr_index(inode, xattr_index), "set xattr index"));
    }
    if (node->link_count > 1) {
      // Only the extended file inode has a link count; the basic one implies 1.
      SM_RETURN_IF_ERROR(Check(sqfs_inode_make_extended(inode), "extend file inode"));
      inode->data.file_ext.nlink = node->link_count;
    }
  } else {
    SM_ASSIGN_OR_RETURN(sqfs_u16 type, SpecialInodeType(node->mode));
    const size_t extra = type == SQFS_INODE_SLINK ? node->symlink_target.size() : 0;
    owned = AllocInode(extra);
    inode = owned.get();
    inode->base.type = type;
    switch (type) {
      case SQFS_INODE_SLINK:
        inode->data.slink.nlink = node->link_count;
        inode->data.slink.target_size = static_cast<sqfs_u32>(extra);
        inode->payload_bytes_available = static_cast<sqfs_u32>(extra);
        inode->payload_bytes_used = static_cast<sqfs_u32>(extra);
        std::memcpy(inode->extra, node->symlink_target.data(), extra);
        break;
      case SQFS_INODE_CDEV:
      case SQFS_INODE_BDEV:
        inode->data.dev.nlink = node->link_count;
        inode->data.dev.devno = node->devno;
        break;
      default:
        inode->data.ipc.nlink = node->link_count;
        break;
    }
    if (xattr_index != kNoXattr) {
      SM_RETURN_IF_ERROR(Check(sqfs_inode_set_xattr_index(inode, xattr_index), "set xattr index"));
    }
  }

  inode->base.mode = static_cast<sqfs_u16>(node->mode);
  inode->base.mod_time = node->mtime;
  inode->base.inode_number = node->inode_num;
  SM_RETURN_IF_ERROR(Check(sqfs_id_table_id_to_index(id_table_.get(), node->uid,
                                                     &inode->base.uid_idx),
                           "add uid to ID table"));
  SM_RETURN_IF_ERROR(Check(sqfs_id_table_id_to_index(id_table_.get(), node->gid,
                                                     &inode->base.gid_idx),
                           "add gid to ID table"));
  sqfs_u64 block = 0;
  sqfs_u32 offset = 0;
  sqfs_meta_writer_get_position(inode_writer_.get(), &block, &offset);
  node->inode_ref = (block << 16) | offset;
  return Check(sqfs_meta_writer_write_inode(inode_writer_.get(), inode), "write inode");
}

absl::StatusOr<uint64_t> SquashfsWriter::Finish(LayerTree& tree) {
  finished_ = true;  // Whatever finish() returns, nothing is left in flight to drain.
  SM_RETURN_IF_ERROR(
      Check(sqfs_block_processor_finish(block_processor_.get()), "finish data blocks"));

  // Collect reachable inodes without recursion (a hostile tar can nest very deep): unique
  // non-directories in first-seen order with their link counts, directories in post-order.
  std::vector<LayerInode*> others;
  std::vector<DirToWrite> dirs;
  struct Frame {
    LayerInode* dir;
    LayerInode* parent;
    std::map<std::string, LayerInode*>::iterator next;
  };
  LayerInode* root = tree.root();
  std::vector<Frame> stack;
  stack.push_back({root, nullptr, root->children.begin()});
  while (!stack.empty()) {
    Frame& top = stack.back();
    if (top.next == top.dir->children.end()) {
      dirs.push_back({top.dir, top.parent});
      stack.pop_back();
      continue;
    }
    LayerInode* child = (top.next++)->second;
    if (child->IsDir()) {
      LayerInode* dir = top.dir;
      stack.push_back({child, dir, child->children.begin()});  // Invalidates `top`.
      continue;
    }
    if (child->link_count == 0) {
      others.push_back(child);
    }
    ++child->link_count;
  }
  if (others.size() + dirs.size() > 0xFFFFFFFEu) {
    return absl::ResourceExhaustedError("too many inodes for squashfs");
  }
  uint32_t next_num = 1;
  for (LayerInode* node : others) {
    node->inode_num = next_num++;
  }
  for (const DirToWrite& d : dirs) {
    d.dir->inode_num = next_num++;
  }
  const uint32_t inode_count = next_num - 1;  // The root is last: inode_count.

  super_.inode_count = inode_count;
  super_.inode_table_start = file_->get_size(file_.get());
  for (LayerInode* node : others) {
    SM_RETURN_IF_ERROR(WriteInode(node, 0));
  }
  for (const DirToWrite& d : dirs) {
    // As mksquashfs does, the root's ".." points one past the last inode.
    const uint32_t parent_num = d.parent == nullptr ? inode_count + 1 : d.parent->inode_num;
    SM_RETURN_IF_ERROR(WriteInode(d.dir, parent_num));
  }
  SM_RETURN_IF_ERROR(Check(sqfs_meta_writer_flush(inode_writer_.get()), "flush inode table"));
  SM_RETURN_IF_ERROR(Check(sqfs_meta_writer_flush(dir_meta_writer_.get()), "flush directories"));
  super_.root_inode_ref = root->inode_ref;
  super_.directory_table_start = file_->get_size(file_.get());
  SM_RETURN_IF_ERROR(
      Check(sqfs_meta_write_write_to_file(dir_meta_writer_.get()), "write directory table"));

  SM_RETURN_IF_ERROR(Check(sqfs_frag_table_write(frag_table_.get(), file_.get(), &super_,
                                                 compressor_.get()),
                           "write fragment table"));
  SM_RETURN_IF_ERROR(Check(sqfs_id_table_write(id_table_.get(), file_.get(), &super_,
                                               compressor_.get()),
                           "write ID table"));
  SM_RETURN_IF_ERROR(Check(sqfs_xattr_writer_flush(xattr_writer_.get(), file_.get(), &super_,
                                                   compressor_.get()),
                           "write xattr table"));
  super_.bytes_used = file_->get_size(file_.get());
  SM_RETURN_IF_ERROR(Check(sqfs_super_write(&super_, file_.get()), "write super block"));

  // Pad to the device block size so a loop device exposes the whole image.
  const uint64_t rem = super_.bytes_used % SQFS_DEVBLK_SIZE;
  if (rem != 0) {
    std::vector<uint8_t> zeros(SQFS_DEVBLK_SIZE - rem, 0);
    SM_RETURN_IF_ERROR(Check(file_->write_at(file_.get(), super_.bytes_used, zeros.data(),
                                             zeros.size()),
                             "pad image"));
  }
  return file_->get_size(file_.get());
}

int SquashfsWriter::write_errno() const { return file_ ? SqfsFdFileWriteErrno(file_.get()) : 0; }

}  // namespace supermachine::layer
