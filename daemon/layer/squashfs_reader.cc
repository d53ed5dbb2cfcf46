// File: squashfs_reader.cc
// Walks the full directory hierarchy of an image and converts each inode to a FileEntry.
#include "daemon/layer/squashfs_reader.h"

#include <sqfs/data_reader.h>
#include <sqfs/dir_reader.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/xattr.h>
#include <sqfs/xattr_reader.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/layer/squashfs_image.h"
#include "worker/base/status_macros.h"

namespace supermachine::layer {
namespace {

struct TreeDeleter {
  void operator()(sqfs_tree_node_t* node) const { sqfs_dir_tree_destroy(node); }
};

absl::Status Check(int ret, absl::string_view what) {
  return ret == 0 ? absl::OkStatus() : SqfsError(ret, what);
}

absl::StatusOr<FileType> TypeOf(const sqfs_inode_generic_t* inode) {
  switch (inode->base.type) {
    case SQFS_INODE_DIR:
    case SQFS_INODE_EXT_DIR: return FileType::kDirectory;
    case SQFS_INODE_FILE:
    case SQFS_INODE_EXT_FILE: return FileType::kRegular;
    case SQFS_INODE_SLINK:
    case SQFS_INODE_EXT_SLINK: return FileType::kSymlink;
    case SQFS_INODE_CDEV:
    case SQFS_INODE_EXT_CDEV: return FileType::kCharDevice;
    case SQFS_INODE_BDEV:
    case SQFS_INODE_EXT_BDEV: return FileType::kBlockDevice;
    case SQFS_INODE_FIFO:
    case SQFS_INODE_EXT_FIFO: return FileType::kFifo;
    case SQFS_INODE_SOCKET:
    case SQFS_INODE_EXT_SOCKET: return FileType::kSocket;
    default: return absl::DataLossError(absl::StrCat("unknown inode type ", inode->base.type));
  }
}

uint32_t LinkCount(const sqfs_inode_generic_t* inode) {
  switch (inode->base.type) {
    case SQFS_INODE_DIR: return inode->data.dir.nlink;
    case SQFS_INODE_EXT_DIR: return inode->data.dir_ext.nlink;
    case SQFS_INODE_FILE: return 1;
    case SQFS_INODE_EXT_FILE: return inode->data.file_ext.nlink;
    case SQFS_INODE_SLINK:
    case SQFS_INODE_EXT_SLINK: return inode->data.slink.nlink;
    case SQFS_INODE_CDEV:
    case SQFS_INODE_BDEV:
    case SQFS_INODE_EXT_CDEV:
    case SQFS_INODE_EXT_BDEV: return inode->data.dev.nlink;
    default: return inode->data.ipc.nlink;
  }
}

class TreeReader {
 public:
  TreeReader(SquashfsImage& image, const ReadOptions& options)
      : image_(image), options_(options) {}

  absl::StatusOr<FileTree> Read() {
    sqfs_super_t* super = &image_.super;
    sqfs_file_t* file = image_.file.get();
    sqfs_compressor_t* cmp = image_.decompressor.get();
    SqfsPtr<sqfs_id_table_t> ids(sqfs_id_table_create(0));
    SqfsPtr<sqfs_dir_reader_t> dirs(sqfs_dir_reader_create(super, cmp, file, 0));
    data_.reset(sqfs_data_reader_create(file, super->block_size, cmp, 0));
    xattrs_.reset(sqfs_xattr_reader_create(0));
    if (!ids || !dirs || !data_ || !xattrs_) {
      return absl::ResourceExhaustedError("allocating squashfs readers");
    }
    SM_RETURN_IF_ERROR(Check(sqfs_id_table_read(ids.get(), file, super, cmp), "read ID table"));
    SM_RETURN_IF_ERROR(
        Check(sqfs_data_reader_load_fragment_table(data_.get(), super), "read fragment table"));
    SM_RETURN_IF_ERROR(
        Check(sqfs_xattr_reader_load(xattrs_.get(), super, file, cmp), "read xattr table"));
    sqfs_tree_node_t* raw_root = nullptr;
    SM_RETURN_IF_ERROR(Check(
        sqfs_dir_reader_get_full_hierarchy(dirs.get(), ids.get(), nullptr, 0, &raw_root),
        "read directory hierarchy"));
    std::unique_ptr<sqfs_tree_node_t, TreeDeleter> root(raw_root);

    FileTree tree;
    struct Pending {
      const sqfs_tree_node_t* node;
      std::string path;
    };
    std::vector<Pending> stack{{root.get(), "/"}};
    while (!stack.empty()) {
      Pending item = std::move(stack.back());
      stack.pop_back();
      auto entry = ToEntry(item.node);
      if (!entry.ok()) {
        return base::Annotate(entry.status(), item.path);
      }
      for (const sqfs_tree_node_t* child = item.node->children; child != nullptr;
           child = child->next) {
        const std::string name(reinterpret_cast<const char*>(child->name));
        stack.push_back({child, item.path == "/" ? "/" + name : item.path + "/" + name});
      }
      tree.emplace(std::move(item.path), std::move(*entry));
    }
    return tree;
  }

 private:
  absl::StatusOr<FileEntry> ToEntry(const sqfs_tree_node_t* node) {
    const sqfs_inode_generic_t* inode = node->inode;
    FileEntry e;
    SM_ASSIGN_OR_RETURN(e.type, TypeOf(inode));
    e.permissions = inode->base.mode & 07777;
    e.uid = node->uid;
    e.gid = node->gid;
    e.mtime = inode->base.mod_time;
    e.inode_id = inode->base.inode_number;
    e.nlink = LinkCount(inode);
    switch (e.type) {
      case FileType::kSymlink:
        e.symlink_target.assign(reinterpret_cast<const char*>(inode->extra),
                                inode->data.slink.target_size);
        break;
      case FileType::kCharDevice:
      case FileType::kBlockDevice: {
        // Linux new_decode_dev().
        const uint32_t dev = inode->data.dev.devno;
        e.dev_major = (dev & 0xfff00) >> 8;
        e.dev_minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
        break;
      }
      case FileType::kRegular:
        SM_RETURN_IF_ERROR(ReadContent(inode, e));
        break;
      default:
        break;
    }
    SM_RETURN_IF_ERROR(ReadXattrs(inode, e));
    return e;
  }

  absl::Status ReadContent(const sqfs_inode_generic_t* inode, FileEntry& e) {
    sqfs_u64 size = 0;
    SM_RETURN_IF_ERROR(Check(sqfs_inode_get_file_size(inode, &size), "file size"));
    e.size = size;
    if (size > options_.max_content_bytes) {
      return absl::OkStatus();
    }
    e.content.resize(size);
    uint64_t offset = 0;
    while (offset < size) {
      const uint32_t chunk = static_cast<uint32_t>(std::min<uint64_t>(size - offset, 1 << 20));
      sqfs_s32 n = sqfs_data_reader_read(data_.get(), inode, offset, e.content.data() + offset,
                                         chunk);
      if (n < 0) {
        return SqfsError(n, "read file data");
      }
      if (n == 0) {
        return absl::DataLossError("file data ends early");
      }
      offset += static_cast<uint64_t>(n);
    }
    e.content_read = true;
    return absl::OkStatus();
  }

  absl::Status ReadXattrs(const sqfs_inode_generic_t* inode, FileEntry& e) {
    sqfs_u32 index = 0xFFFFFFFF;
    SM_RETURN_IF_ERROR(Check(sqfs_inode_get_xattr_index(inode, &index), "xattr index"));
    if (index == 0xFFFFFFFF) {
      return absl::OkStatus();
    }
    sqfs_xattr_id_t desc;
    SM_RETURN_IF_ERROR(Check(sqfs_xattr_reader_get_desc(xattrs_.get(), index, &desc),
                             "xattr descriptor"));
    SM_RETURN_IF_ERROR(Check(sqfs_xattr_reader_seek_kv(xattrs_.get(), &desc), "seek xattrs"));
    for (sqfs_u32 i = 0; i < desc.count; ++i) {
      sqfs_xattr_entry_t* raw_key = nullptr;
      SM_RETURN_IF_ERROR(Check(sqfs_xattr_reader_read_key(xattrs_.get(), &raw_key), "xattr key"));
      SqfsMallocPtr<sqfs_xattr_entry_t> key(raw_key);
      sqfs_xattr_value_t* raw_value = nullptr;
      SM_RETURN_IF_ERROR(Check(sqfs_xattr_reader_read_value(xattrs_.get(), key.get(), &raw_value),
                               "xattr value"));
      SqfsMallocPtr<sqfs_xattr_value_t> value(raw_value);
      // libsquashfs returns the key with its prefix ("user.", ...) already prepended and
      // NUL-terminated; `size` counts only the stored suffix.
      const std::string name(reinterpret_cast<const char*>(key->key));
      e.xattrs[name] =
          std::string(reinterpret_cast<const char*>(value->value), value->size);
    }
    return absl::OkStatus();
  }

  SquashfsImage& image_;
  const ReadOptions& options_;
  SqfsPtr<sqfs_data_reader_t> data_;
  SqfsPtr<sqfs_xattr_reader_t> xattrs_;
};

}  // namespace

absl::StatusOr<FileTree> ReadSquashfsTree(const std::string& path, const ReadOptions& options) {
  SM_ASSIGN_OR_RETURN(SquashfsImage image, OpenSquashfsImage(path));
  TreeReader reader(image, options);
  auto tree = reader.Read();
  if (!tree.ok()) {
    return base::Annotate(tree.status(), absl::StrCat("read squashfs image ", path));
  }
  return tree;
}

}  // namespace supermachine::layer
