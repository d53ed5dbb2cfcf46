// File: sqfs_handles.cc
// libsquashfs error codes as text and as absl::Status.
#include "daemon/layer/sqfs_handles.h"

#include "absl/strings/str_cat.h"

namespace supermachine::layer {

const char* SqfsErrorText(int code) {
  switch (code) {
    case SQFS_ERROR_ALLOC: return "out of memory";
    case SQFS_ERROR_IO: return "input/output error";
    case SQFS_ERROR_COMPRESSOR: return "compressor error";
    case SQFS_ERROR_INTERNAL: return "internal libsquashfs error";
    case SQFS_ERROR_CORRUPTED: return "data corrupted";
    case SQFS_ERROR_UNSUPPORTED: return "unsupported feature";
    case SQFS_ERROR_OVERFLOW: return "numeric overflow";
    case SQFS_ERROR_OUT_OF_BOUNDS: return "location out of bounds";
    case SFQS_ERROR_SUPER_MAGIC: return "not a squashfs image (bad super block magic)";
    case SFQS_ERROR_SUPER_VERSION: return "unsupported squashfs version";
    case SQFS_ERROR_SUPER_BLOCK_SIZE: return "invalid squashfs block size";
    case SQFS_ERROR_NOT_DIR: return "not a directory";
    case SQFS_ERROR_NO_ENTRY: return "no such entry";
    case SQFS_ERROR_LINK_LOOP: return "hard link loop";
    case SQFS_ERROR_NOT_FILE: return "not a regular file";
    case SQFS_ERROR_ARG_INVALID: return "invalid argument";
    case SQFS_ERROR_SEQUENCE: return "call out of sequence";
    default: return "unknown libsquashfs error";
  }
}

absl::Status SqfsError(int code, absl::string_view context) {
  std::string message = absl::StrCat(context, ": ", SqfsErrorText(code), " (", code, ")");
  switch (code) {
    case SQFS_ERROR_ALLOC: return absl::ResourceExhaustedError(message);
    case SQFS_ERROR_IO: return absl::UnavailableError(message);
    case SQFS_ERROR_CORRUPTED:
    case SQFS_ERROR_OUT_OF_BOUNDS:
    case SFQS_ERROR_SUPER_MAGIC:
    case SFQS_ERROR_SUPER_VERSION:
    case SQFS_ERROR_SUPER_BLOCK_SIZE:
    case SQFS_ERROR_LINK_LOOP:
      return absl::DataLossError(message);
    default: return absl::InternalError(message);
  }
}

}  // namespace supermachine::layer
