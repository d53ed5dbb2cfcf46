// File: layer_tree.cc
// Path normalisation and the replace/whiteout/opaque rules of one layer's tree.
#include "daemon/layer/layer_tree.h"

#include <sys/stat.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "worker/base/status_macros.h"

namespace supermachine::layer {
namespace {

// Linux NAME_MAX; squashfs stores names up to 256 bytes but the kernel refuses longer than this.
constexpr size_t kMaxNameLength = 255;

}  // namespace

LayerInode::~LayerInode() {
  // Allocated with malloc by libsquashfs's block processor.
  sqfs_free(file_inode);
}

absl::StatusOr<std::vector<std::string>> NormalizeEntryPath(absl::string_view path) {
  std::vector<std::string> components;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      return absl::InvalidArgumentError("path escapes the layer root ('..' component)");
    }
    if (part.size() > kMaxNameLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("path component is ", part.size(), " bytes, longer than ",
                       kMaxNameLength));
    }
    components.emplace_back(part);
  }
  return components;
}

std::string JoinPath(const std::vector<std::string>& components) {
  if (components.empty()) {
    return "/";
  }
  return absl::StrJoin(components, "/");
}

LayerTree::LayerTree(uint64_t max_inodes) : max_inodes_(max_inodes) {
  arena_.push_back(std::make_unique<LayerInode>());
  root_ = arena_.back().get();
  root_->mode = S_IFDIR | 0755;
}

absl::StatusOr<LayerInode*> LayerTree::NewInode() {
  if (arena_.size() >= max_inodes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("more than ", max_inodes_, " entries in one layer"));
  }
  arena_.push_back(std::make_unique<LayerInode>());
  return arena_.back().get();
}

absl::StatusOr<LayerInode*> LayerTree::NewImplicitDir() {
  SM_ASSIGN_OR_RETURN(LayerInode * dir, NewInode());
  dir->mode = S_IFDIR | 0755;
  return dir;
}

absl::StatusOr<LayerInode*> LayerTree::EnsureDir(const std::vector<std::string>& path,
                                                 size_t count) {
  LayerInode* dir = root_;
  for (size_t i = 0; i < count; ++i) {
    auto it = dir->children.find(path[i]);
    if (it == dir->children.end()) {
      SM_ASSIGN_OR_RETURN(LayerInode * child, NewImplicitDir());
      it = dir->children.emplace(path[i], child).first;
    } else if (it->second->IsWhiteout()) {
      // Deleted from the lower layers and recreated by this one: only this layer's view counts.
      SM_ASSIGN_OR_RETURN(LayerInode * child, NewImplicitDir());
      child->opaque = true;
      it->second = child;
    } else if (!it->second->IsDir()) {
      std::vector<std::string> prefix(path.begin(), path.begin() + static_cast<long>(i) + 1);
      return absl::InvalidArgumentError(
          absl::StrCat("parent '", JoinPath(prefix), "' is not a directory"));
    }
    dir = it->second;
  }
  return dir;
}

LayerInode* LayerTree::Find(const std::vector<std::string>& path) {
  LayerInode* node = root_;
  for (const std::string& name : path) {
    if (!node->IsDir()) {
      return nullptr;
    }
    auto it = node->children.find(name);
    if (it == node->children.end()) {
      return nullptr;
    }
    node = it->second;
  }
  return node;
}

absl::StatusOr<LayerInode*> LayerTree::AddEntry(const std::vector<std::string>& path,
                                                EntryAttrs attrs) {
  const bool is_dir = (attrs.mode & S_IFMT) == S_IFDIR;
  auto assign = [&attrs](LayerInode* node) {
    node->mode = attrs.mode;
    node->uid = attrs.uid;
    node->gid = attrs.gid;
    node->mtime = attrs.mtime;
    node->xattrs = std::move(attrs.xattrs);
    node->symlink_target = std::move(attrs.symlink_target);
    node->devno = attrs.devno;
  };
  if (path.empty()) {
    if (!is_dir) {
      return absl::InvalidArgumentError("the layer root entry is not a directory");
    }
    assign(root_);
    return root_;
  }
  SM_ASSIGN_OR_RETURN(LayerInode * parent, EnsureDir(path, path.size() - 1));
  auto it = parent->children.find(path.back());
  if (it != parent->children.end() && is_dir) {
    LayerInode* existing = it->second;
    if (existing->IsDir()) {
      assign(existing);  // Merge: tar extraction updates an existing directory in place.
      return existing;
    }
    if (existing->IsWhiteout()) {
      SM_ASSIGN_OR_RETURN(LayerInode * dir, NewInode());
      assign(dir);
      dir->opaque = true;
      it->second = dir;
      return dir;
    }
  }
  SM_ASSIGN_OR_RETURN(LayerInode * node, NewInode());
  assign(node);
  parent->children[path.back()] = node;  // Replaces any earlier entry and its subtree.
  return node;
}

absl::Status LayerTree::AddHardLink(const std::vector<std::string>& path,
                                    const std::vector<std::string>& target) {
  LayerInode* target_node = Find(target);
  if (target_node == nullptr || target_node->IsWhiteout()) {
    return absl::InvalidArgumentError(
        absl::StrCat("hard link target '", JoinPath(target),
                     "' is not an earlier entry of this layer"));
  }
  if (target_node->IsDir()) {
    return absl::InvalidArgumentError(
        absl::StrCat("hard link target '", JoinPath(target), "' is a directory"));
  }
  if (path.empty()) {
    return absl::InvalidArgumentError("a hard link cannot replace the layer root");
  }
  SM_ASSIGN_OR_RETURN(LayerInode * parent, EnsureDir(path, path.size() - 1));
  parent->children[path.back()] = target_node;
  return absl::OkStatus();
}

absl::Status LayerTree::AddWhiteout(const std::vector<std::string>& dir, const std::string& name,
                                    const EntryAttrs& attrs) {
  SM_ASSIGN_OR_RETURN(LayerInode * parent, EnsureDir(dir, dir.size()));
  auto it = parent->children.find(name);
  if (it != parent->children.end() && !it->second->IsWhiteout()) {
    // OCI: a whiteout only applies to lower layers. This layer's own directory keeps its
    // contents but must hide the lower ones; its own non-directory already hides them.
    if (it->second->IsDir()) {
      it->second->opaque = true;
    }
    return absl::OkStatus();
  }
  SM_ASSIGN_OR_RETURN(LayerInode * node, NewInode());
  // overlayfs whiteout: a character device with device number 0:0 (the mode bits are not
  // looked at; 0 as containerd and Docker create them).
  node->mode = S_IFCHR;
  node->devno = 0;
  node->uid = attrs.uid;
  node->gid = attrs.gid;
  node->mtime = attrs.mtime;
  parent->children[name] = node;
  return absl::OkStatus();
}

absl::Status LayerTree::MarkOpaque(const std::vector<std::string>& dir) {
  SM_ASSIGN_OR_RETURN(LayerInode * node, EnsureDir(dir, dir.size()));
  node->opaque = true;
  return absl::OkStatus();
}

}  // namespace supermachine::layer
