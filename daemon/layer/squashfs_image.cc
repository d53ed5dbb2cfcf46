// File: squashfs_image.cc
// Super block, decompressor and root inode checks on an existing image.
#include "daemon/layer/squashfs_image.h"

#include <fcntl.h>
#include <sqfs/dir_reader.h>
#include <sqfs/inode.h>

#include "absl/strings/str_cat.h"
#include "daemon/layer/sqfs_fd_file.h"
#include "worker/base/status_macros.h"

namespace supermachine::layer {

absl::StatusOr<SquashfsImage> OpenSquashfsImage(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("open squashfs image ", path));
  }
  auto image = OpenSquashfsImageFd(base::UniqueFd(fd));
  if (!image.ok()) {
    return base::Annotate(image.status(), absl::StrCat("squashfs image ", path));
  }
  return image;
}

absl::StatusOr<SquashfsImage> OpenSquashfsImageFd(base::UniqueFd fd) {
  SquashfsImage image;
  image.fd = std::move(fd);
  SM_ASSIGN_OR_RETURN(image.file, MakeSqfsFdFileForRead(image.fd.get()));
  int ret = sqfs_super_read(&image.super, image.file.get());
  if (ret != 0) {
    return SqfsError(ret, "read super block");
  }
  const uint64_t size = image.file->get_size(image.file.get());
  if (image.super.bytes_used > size) {
    return absl::DataLossError(absl::StrCat("image is truncated: super block says ",
                                            image.super.bytes_used, " bytes, file has ", size));
  }
  sqfs_compressor_config_t cfg;
  ret = sqfs_compressor_config_init(&cfg, static_cast<SQFS_COMPRESSOR>(image.super.compression_id),
                                    image.super.block_size, SQFS_COMP_FLAG_UNCOMPRESS);
  if (ret != 0) {
    return SqfsError(ret, "configure decompressor");
  }
  sqfs_compressor_t* raw = nullptr;
  ret = sqfs_compressor_create(&cfg, &raw);
  if (ret != 0) {
    return SqfsError(ret, "create decompressor");
  }
  image.decompressor.reset(raw);
  if (image.super.flags & SQFS_FLAG_COMPRESSOR_OPTIONS) {
    ret = image.decompressor->read_options(image.decompressor.get(), image.file.get());
    if (ret != 0) {
      return SqfsError(ret, "read compressor options");
    }
  }
  return image;
}

absl::Status VerifySquashfsImage(SquashfsImage& image) {
  if (image.super.compression_id != SQFS_COMP_ZSTD) {
    return absl::DataLossError(
        absl::StrCat("image uses compressor ", image.super.compression_id, ", expected zstd"));
  }
  SqfsPtr<sqfs_dir_reader_t> reader(
      sqfs_dir_reader_create(&image.super, image.decompressor.get(), image.file.get(), 0));
  if (!reader) {
    return absl::DataLossError("cannot load directory table");
  }
  sqfs_inode_generic_t* root = nullptr;
  int ret = sqfs_dir_reader_get_root_inode(reader.get(), &root);
  SqfsMallocPtr<sqfs_inode_generic_t> root_owner(root);
  if (ret != 0) {
    return SqfsError(ret, "read root inode");
  }
  if (root->base.type != SQFS_INODE_DIR && root->base.type != SQFS_INODE_EXT_DIR) {
    return absl::DataLossError("root inode is not a directory");
  }
  return absl::OkStatus();
}

}  // namespace supermachine::layer
