// File: snapshot_name.cc
#include "daemon/bake/snapshot_name.h"

#include "absl/strings/str_cat.h"

namespace supermachine::bake {

std::string DefaultSnapshotName(absl::string_view image) {
  std::string out;
  size_t chars = 0;
  for (char c : image) {
    // A UTF-8 continuation byte (10xxxxxx) belongs to the character before it.
    const bool continuation = (static_cast<unsigned char>(c) & 0xC0) == 0x80;
    if (!continuation) {
      if (chars == kDerivedNameMaxChars) {
        break;
      }
      ++chars;
    }
    out.push_back(c == ':' || c == '/' || c == '.' ? '_' : c);
  }
  return out;
}

absl::Status CheckSnapshotName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("snapshot name is empty");
  }
  if (name.size() > kMaxSnapshotNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("snapshot name is ", name.size(),
                                                   " bytes; the limit is ",
                                                   kMaxSnapshotNameBytes));
  }
  if (name.find_first_of(absl::string_view("/\n\0", 3)) != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot name '", name, "': must not contain '/', NUL or newline"));
  }
  if (name.front() == '.') {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot name '", name, "': must not start with '.'"));
  }
  return absl::OkStatus();
}

}  // namespace supermachine::bake
