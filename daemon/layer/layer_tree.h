// File: layer_tree.h
// The in-memory model of one layer while it is converted: directories, inodes and the OCI →
// overlayfs whiteout rules. File data is not held here: it goes straight to the squashfs
// block processor; a regular file keeps only the libsquashfs inode with its block list.
#pragma once

#include <sqfs/inode.h>
#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::layer {

// One inode of the layer. Hard links are several directory entries naming the same LayerInode.
struct LayerInode {
  LayerInode() = default;
  ~LayerInode();
  LayerInode(const LayerInode&) = delete;
  LayerInode& operator=(const LayerInode&) = delete;

  bool IsDir() const { return (mode & S_IFMT) == S_IFDIR; }
  bool IsRegular() const { return (mode & S_IFMT) == S_IFREG; }
  // An overlayfs whiteout: a character device 0:0.
  bool IsWhiteout() const { return (mode & S_IFMT) == S_IFCHR && devno == 0; }

  uint32_t mode = 0;  // st_mode: type and permission bits (incl. setuid/setgid/sticky).
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t mtime = 0;
  std::map<std::string, std::string> xattrs;  // Keys with a squashfs-supported prefix only.
  bool opaque = false;         // Directories: emit trusted.overlay.opaque=y.
  std::string symlink_target;  // Symlinks.
  uint32_t devno = 0;          // Devices, in the kernel's new_encode_dev() form.
  // Regular files: created and updated by the block processor, which keeps a pointer to this
  // member until sqfs_block_processor_finish(); LayerInodes therefore never move (see arena).
  sqfs_inode_generic_t* file_inode = nullptr;
  std::map<std::string, LayerInode*> children;  // Directories; byte-wise sorted as squashfs needs.

  // Filled while serialising.
  uint32_t link_count = 0;
  uint32_t inode_num = 0;
  uint64_t inode_ref = 0;
};

// Attributes of a tar entry, already validated and converted.
struct EntryAttrs {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t mtime = 0;
  std::map<std::string, std::string> xattrs;
  std::string symlink_target;
  uint32_t devno = 0;
};

// Splits a tar path into components: strips leading '/' and './', drops empty and '.'
// components. A '..' component is rejected (InvalidArgument "path escapes the layer root"),
// as is a component longer than 255 bytes. An empty result names the layer root.
absl::StatusOr<std::vector<std::string>> NormalizeEntryPath(absl::string_view path);

// Joins components back for messages: {"a","b"} → "a/b", {} → "/".
std::string JoinPath(const std::vector<std::string>& components);

class LayerTree {
 public:
  // `max_inodes` bounds memory: more entries than this fail with ResourceExhausted.
  explicit LayerTree(uint64_t max_inodes);

  // Adds (or replaces: later entries win, as when extracting a tar) the entry at `path`.
  // A directory over a directory merges (children kept, attributes replaced); a directory over
  // a whiteout of the same name becomes opaque (the layer deletes the lower one, then makes
  // its own). The root ({}) takes only directory attributes. Missing parents are created as
  // 0755 root:root directories. Returns the inode, to stream file data into.
  absl::StatusOr<LayerInode*> AddEntry(const std::vector<std::string>& path, EntryAttrs attrs);

  // A hard link at `path` to the earlier non-directory entry `target` of this layer.
  absl::Status AddHardLink(const std::vector<std::string>& path,
                           const std::vector<std::string>& target);

  // OCI `.wh.NAME` in `dir`: NAME is deleted from lower layers. Becomes a 0:0 character device,
  // unless this layer already has NAME (a directory then turns opaque; a file already hides).
  absl::Status AddWhiteout(const std::vector<std::string>& dir, const std::string& name,
                           const EntryAttrs& attrs);

  // OCI `.wh..wh..opq` in `dir`: lower layers' contents of dir are hidden.
  absl::Status MarkOpaque(const std::vector<std::string>& dir);

  LayerInode* root() { return root_; }
  uint64_t inode_count() const { return arena_.size(); }

 private:
  absl::StatusOr<LayerInode*> NewInode();
  absl::StatusOr<LayerInode*> NewImplicitDir();
  // Walks to the directory `path`, creating missing ones (implicit). A whiteout on the way is
  // replaced by an opaque implicit directory; any other non-directory is an error.
  absl::StatusOr<LayerInode*> EnsureDir(const std::vector<std::string>& path, size_t count);
  // The existing entry at `path`, or nullptr.
  LayerInode* Find(const std::vector<std::string>& path);

  uint64_t max_inodes_;
  // Owner of every inode ever created, including replaced ones: the block processor may
  // still write into a replaced file's inode until it finishes, so none is freed early.
  std::vector<std::unique_ptr<LayerInode>> arena_;
  LayerInode* root_ = nullptr;
};

}  // namespace supermachine::layer
