// File: manifest_fuzz.cc
// Fuzzes manifest / index parsing under each content type, and platform selection on any
// index that parses. Property: no crash, no exception escapes (nlohmann stays inside).
#include <cstdint>
#include <string>

#include "daemon/image/manifest.h"
#include "daemon/image/media_types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace img = supermachine::image;
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const char* ct : {"", img::media_types::kOciManifest, img::media_types::kOciIndex,
                         img::media_types::kDockerManifest, img::media_types::kDockerManifestList}) {
    auto doc = img::ParseManifestDocument(text, ct);
    if (doc.ok()) {
      if (const auto* index = std::get_if<img::ImageIndex>(&*doc)) {
        (void)img::SelectPlatform(*index, img::Platform{.os = "linux", .architecture = "amd64"});
        (void)img::SelectPlatform(*index, img::Platform{.os = "linux", .architecture = "arm64", .variant = "v8"});
      }
    }
  }
  return 0;
}
