// File: layer_cache.cc
// Layer cache paths, per-digest flock, and the per-image JSON index.
#include "daemon/layer/layer_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/image/digest.h"
#include "daemon/layer/squashfs_image.h"
#include "nlohmann/json.hpp"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::layer {
namespace {

// "sha256:<hex>" → "sha256_<hex>", checking algorithm and hex length.
absl::StatusOr<std::string> DigestFileStem(absl::string_view digest) {
  const size_t colon = digest.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest '", digest, "': expected <algorithm>:<hex>"));
  }
  absl::string_view algo = digest.substr(0, colon);
  absl::string_view hex = digest.substr(colon + 1);
  size_t want = 0;
  if (algo == "sha256") {
    want = 64;
  } else if (algo == "sha512") {
    want = 128;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("digest '", digest, "': unsupported algorithm '", algo, "'"));
  }
  bool lower_hex = hex.size() == want;
  for (char c : hex) {
    lower_hex = lower_hex && (absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'));
  }
  if (!lower_hex) {
    return absl::InvalidArgumentError(absl::StrCat("digest '", digest, "': expected ", want,
                                                   " lowercase hex digits"));
  }
  return absl::StrCat(algo, "_", hex);
}

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return base::ErrnoToStatus(errno, absl::StrCat("create directory ", path));
  }
  return absl::OkStatus();
}

absl::Status FsyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("open ", path));
  }
  base::UniqueFd owner(fd);
  if (::fsync(fd) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync ", path));
  }
  return absl::OkStatus();
}

// SHA-256 of a whole file, lowercase hex.
absl::StatusOr<std::string> Sha256HexOfFile(const std::string& path) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return base::ErrnoToStatus(errno, absl::StrCat("open ", path));
  }
  SM_ASSIGN_OR_RETURN(image::Digest digest, image::Sha256OfFd(fd.get(), path));
  return digest.hex();
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A cached image is usable if libsquashfs can read its super block and root inode and the
// whole file still hashes to the checksum recorded when it was converted. The second check
// finds what the first cannot: a damaged data or fragment block, which would otherwise reach a
// guest as a read error (or wrong bytes in an uncompressed block) long after the bake.
bool IsIntactImage(const std::string& path) {
  auto image = OpenSquashfsImage(path);
  if (!image.ok() || !VerifySquashfsImage(*image).ok()) {
    return false;
  }
  const std::string recorded(
      absl::StripAsciiWhitespace(ReadSmallFile(LayerCache::ChecksumPathOf(path))));
  if (recorded.size() != 64) {
    return false;  // none yet (converted by an older version, or a crash before it was written)
  }
  absl::StatusOr<std::string> actual = Sha256HexOfFile(path);
  return actual.ok() && *actual == recorded;
}

// Records the checksum of a freshly converted image: temp file, fsync, rename, so a present
// checksum file is always complete.
absl::Status WriteChecksum(const std::string& sqfs_path) {
  SM_ASSIGN_OR_RETURN(std::string hex, Sha256HexOfFile(sqfs_path));
  const std::string final_path = LayerCache::ChecksumPathOf(sqfs_path);
  const std::string tmp = absl::StrCat(final_path, ".tmp-", ::getpid());
  {
    base::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) {
      return base::ErrnoToStatus(errno, absl::StrCat("create ", tmp));
    }
    hex.push_back('\n');
    if (::write(fd.get(), hex.data(), hex.size()) != static_cast<ssize_t>(hex.size()) ||
        ::fsync(fd.get()) != 0) {
      const int err = errno != 0 ? errno : EIO;
      ::unlink(tmp.c_str());
      return base::ErrnoToStatus(err, absl::StrCat("write ", tmp));
    }
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return base::ErrnoToStatus(err, absl::StrCat("rename ", tmp, " to ", final_path));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LayerCache> LayerCache::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::Status(absl::ErrnoToStatusCode(ec.value()),
                        absl::StrCat("create layer cache ", dir, ": ", ec.message()));
  }
  std::string absolute = std::filesystem::absolute(dir).lexically_normal().string();
  for (const char* sub : {"layers", "locks", "images"}) {
    SM_RETURN_IF_ERROR(MakeDir(absl::StrCat(absolute, "/", sub)));
  }
  return LayerCache(absolute);
}

std::string LayerCache::ChecksumPathOf(const std::string& sqfs_path) {
  return sqfs_path + ".sha256";
}

absl::StatusOr<std::string> LayerCache::LayerPath(absl::string_view digest) const {
  SM_ASSIGN_OR_RETURN(std::string stem, DigestFileStem(digest));
  return absl::StrCat(dir_, "/layers/", stem, ".sqfs");
}

absl::StatusOr<CachedLayer> LayerCache::GetOrConvert(absl::string_view digest,
                                                     const std::string& blob_path,
                                                     ConvertOptions options) const {
  SM_ASSIGN_OR_RETURN(std::string stem, DigestFileStem(digest));
  CachedLayer result;
  result.digest = std::string(digest);
  result.path = absl::StrCat(dir_, "/layers/", stem, ".sqfs");
  // Fast path: no lock needed, a present file is complete (it only appears by rename).
  if (::access(result.path.c_str(), F_OK) == 0 && IsIntactImage(result.path)) {
    result.cache_hit = true;
    return result;
  }
  const std::string lock_path = absl::StrCat(dir_, "/locks/", stem, ".lock");
  int raw = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (raw < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("open lock ", lock_path));
  }
  base::UniqueFd lock(raw);
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      return base::ErrnoToStatus(errno, absl::StrCat("lock ", lock_path));
    }
  }
  // The lock is released when `lock` closes.
  if (::access(result.path.c_str(), F_OK) == 0 && IsIntactImage(result.path)) {
    result.cache_hit = true;  // Another converter finished while we waited.
    return result;
  }
  if (options.layer_name.empty()) {
    options.layer_name = std::string(digest);
  }
  // Whatever sits at the name is damaged (a valid image returned above): a directory or other
  // non-file would make the final rename fail forever, so clear it before converting again.
  struct stat st;
  if (::lstat(result.path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    std::error_code ec;
    std::filesystem::remove_all(result.path, ec);
    if (ec) {
      return absl::DataLossError(absl::StrCat("layer cache entry ", result.path,
                                              " is not a squashfs file and cannot be removed (",
                                              ec.message(), "); remove it by hand"));
    }
  }
  SM_ASSIGN_OR_RETURN(result.stats, ConvertLayer(blob_path, result.path, options));
  // Conversion is deterministic (the same blob gives the same bytes), so a re-conversion of a
  // damaged entry gives restored guests exactly the image their snapshot was taken with.
  SM_RETURN_IF_ERROR(WriteChecksum(result.path));
  return result;
}

absl::StatusOr<std::string> LayerCache::ImageIndexPath(absl::string_view image_id) const {
  if (image_id.find(':') != absl::string_view::npos) {
    SM_ASSIGN_OR_RETURN(std::string stem, DigestFileStem(image_id));
    return absl::StrCat(dir_, "/images/", stem, ".json");
  }
  bool valid = !image_id.empty() && image_id.size() <= 128 && image_id[0] != '.';
  for (char c : image_id) {
    valid = valid && (absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-');
  }
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat("image id '", image_id, "': expected a digest or [A-Za-z0-9._-]+"));
  }
  return absl::StrCat(dir_, "/images/", image_id, ".json");
}

absl::Status LayerCache::WriteImageIndex(absl::string_view image_id,
                                         const std::vector<std::string>& layer_digests) const {
  SM_ASSIGN_OR_RETURN(std::string path, ImageIndexPath(image_id));
  nlohmann::json doc;
  doc["image_id"] = std::string(image_id);
  doc["layers"] = nlohmann::json::array();
  for (const std::string& digest : layer_digests) {
    SM_ASSIGN_OR_RETURN(std::string layer_path, LayerPath(digest));
    if (::access(layer_path.c_str(), F_OK) != 0) {
      return absl::NotFoundError(
          absl::StrCat("image ", image_id, ": layer ", digest, " is not in the layer cache"));
    }
    doc["layers"].push_back({{"digest", digest}, {"path", layer_path}});
  }
  const std::string text = doc.dump(2) + "\n";

  std::string temp = path + ".tmp-XXXXXX";
  int raw = ::mkostemp(temp.data(), O_CLOEXEC);
  if (raw < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("create temp file for ", path));
  }
  base::UniqueFd fd(raw);
  absl::Cleanup remove_temp = [&temp] { ::unlink(temp.c_str()); };
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("write ", temp));
    }
    written += static_cast<size_t>(n);
  }
  if (::fchmod(fd.get(), 0644) != 0 || ::fsync(fd.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync ", temp));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("rename ", temp, " to ", path));
  }
  std::move(remove_temp).Cancel();
  return FsyncPath(absl::StrCat(dir_, "/images"), O_RDONLY | O_DIRECTORY);
}

absl::StatusOr<ImageLayerIndex> LayerCache::ReadImageIndex(absl::string_view image_id) const {
  SM_ASSIGN_OR_RETURN(std::string path, ImageIndexPath(image_id));
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("image ", image_id, ": no layer index at ", path));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  ImageLayerIndex index;
  try {
    nlohmann::json doc = nlohmann::json::parse(buffer.str());
    index.image_id = doc.at("image_id").get<std::string>();
    for (const auto& layer : doc.at("layers")) {
      CachedLayer entry;
      entry.digest = layer.at("digest").get<std::string>();
      entry.path = layer.at("path").get<std::string>();
      entry.cache_hit = true;
      index.layers.push_back(std::move(entry));
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("image ", image_id, ": layer index ", path,
                                            " is corrupt: ", e.what()));
  }
  return index;
}

}  // namespace supermachine::layer
