// File: cache_check.cc
// Cache audits for the fault tests (see cache_check.h).
#include "tests/faults/cache_check.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/bake/file_hash.h"
#include "daemon/layer/layer_cache.h"
#include "daemon/layer/squashfs_image.h"
#include "daemon/layer/squashfs_reader.h"

namespace supermachine::faults {

namespace fs = std::filesystem;

std::vector<std::string> AuditBlobStore(const std::string& image_cache_dir) {
  std::vector<std::string> problems;
  const fs::path dir = fs::path(image_cache_dir) / "blobs" / "sha256";
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file()) {
      problems.push_back(absl::StrCat(e.path().string(), ": not a regular file"));
      continue;
    }
    if (absl::StartsWith(name, ".")) {
      problems.push_back(absl::StrCat(e.path().string(), ": leftover temp file"));
      continue;
    }
    absl::StatusOr<bake::FileFingerprint> fp = bake::FingerprintFile(e.path().string());
    if (!fp.ok()) {
      problems.push_back(absl::StrCat(e.path().string(), ": ", fp.status().ToString()));
    } else if (fp->digest.hex() != name) {
      problems.push_back(absl::StrCat(e.path().string(), ": content is ", fp->digest.ToString()));
    }
  }
  if (ec) {
    problems.push_back(absl::StrCat(dir.string(), ": ", ec.message()));
  }
  return problems;
}

std::vector<std::string> AuditLayerCache(const std::string& layer_cache_dir) {
  std::vector<std::string> problems;
  const fs::path dir = fs::path(layer_cache_dir) / "layers";
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string path = e.path().string();
    if (e.is_regular_file() && absl::EndsWith(path, ".sqfs.sha256") &&
        !absl::StartsWith(e.path().filename().string(), ".")) {
      // Checked with its image below; one whose image is gone is a leftover.
      if (!fs::exists(path.substr(0, path.size() - 7))) {
        problems.push_back(absl::StrCat(path, ": checksum of a squashfs that is not there"));
      }
      continue;
    }
    if (!e.is_regular_file() || !absl::EndsWith(path, ".sqfs") ||
        absl::StartsWith(e.path().filename().string(), ".")) {
      problems.push_back(absl::StrCat(path, ": not a committed squashfs (temp or foreign entry)"));
      continue;
    }
    absl::StatusOr<layer::SquashfsImage> image = layer::OpenSquashfsImage(path);
    absl::Status st = image.ok() ? layer::VerifySquashfsImage(*image) : image.status();
    if (st.ok()) {
      // Reading every file back decompresses every block: a torn or flipped block shows.
      st = layer::ReadSquashfsTree(path, {.max_content_bytes = 64 << 20}).status();
    }
    if (!st.ok()) {
      problems.push_back(absl::StrCat(path, ": ", st.ToString()));
      continue;
    }
    // The recorded checksum must be there and match (LayerCache writes it after the image).
    std::ifstream sum_in(layer::LayerCache::ChecksumPathOf(path));
    std::string recorded;
    sum_in >> recorded;
    absl::StatusOr<bake::FileFingerprint> fp = bake::FingerprintFile(path);
    if (!fp.ok()) {
      problems.push_back(absl::StrCat(path, ": ", fp.status().ToString()));
    } else if (recorded != fp->digest.hex()) {
      problems.push_back(absl::StrCat(path, ": recorded checksum '", recorded,
                                      "' but the content is ", fp->digest.hex()));
    }
  }
  if (ec) {
    problems.push_back(absl::StrCat(dir.string(), ": ", ec.message()));
  }
  return problems;
}

int OpenFdCount() {
  int n = 0;
  for ([[maybe_unused]] const fs::directory_entry& e : fs::directory_iterator("/proc/self/fd")) {
    ++n;
  }
  return n - 1;  // the iterator's own directory fd
}

long ResidentKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      long kib = 0;
      std::istringstream in(line.substr(6));
      in >> kib;
      return kib;
    }
  }
  return -1;
}

}  // namespace supermachine::faults
