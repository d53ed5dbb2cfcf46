// File: oci_layout_source.cc
// OCI image layout directory source.
#include "daemon/image/oci_layout_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/image/media_types.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::image {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, int64_t max) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return base::ErrnoToStatus(errno, absl::StrCat("open ", path));
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) {
      return out;
    }
    if (static_cast<int64_t>(out.size()) + n > max) {
      return absl::FailedPreconditionError(absl::StrCat(path, " is larger than ", max, " bytes"));
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

absl::StatusOr<Descriptor> SelectLayoutEntry(const ImageIndex& index, const std::string& tag,
                                             const std::optional<Digest>& digest,
                                             const std::string& where) {
  std::vector<std::string> names;
  for (const Descriptor& d : index.manifests) {
    auto it = d.annotations.find(kRefNameAnnotation);
    if (it != d.annotations.end()) {
      names.push_back(it->second);
    }
  }
  if (digest.has_value()) {
    for (const Descriptor& d : index.manifests) {
      if (d.digest == *digest) {
        return d;
      }
    }
    return absl::NotFoundError(absl::StrCat(where, ": no manifest ", digest->ToString(), " in index.json"));
  }
  if (!tag.empty()) {
    for (const Descriptor& d : index.manifests) {
      auto it = d.annotations.find(kRefNameAnnotation);
      if (it != d.annotations.end() && it->second == tag) {
        return d;
      }
    }
    return absl::NotFoundError(absl::StrCat(where, ": no image tagged '", tag, "'; tags present: ",
                                            names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }
  if (index.manifests.size() == 1) {
    return index.manifests.front();
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ": index.json lists ", index.manifests.size(),
                                                 " images; name one with :TAG or @DIGEST (tags: ",
                                                 names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
}

absl::StatusOr<std::unique_ptr<OciLayoutSource>> OciLayoutSource::Open(
    std::string dir, std::string tag, std::optional<Digest> digest, Platform platform) {
  struct stat st;
  for (const char* name : {"oci-layout", "index.json"}) {
    const std::string p = absl::StrCat(dir, "/", name);
    if (::stat(p.c_str(), &st) != 0) {
      return absl::NotFoundError(absl::StrCat("oci-layout:", dir, ": not an OCI image layout (missing ", name, ")"));
    }
  }
  return std::unique_ptr<OciLayoutSource>(
      new OciLayoutSource(std::move(dir), std::move(tag), digest, std::move(platform)));
}

std::string OciLayoutSource::BlobPath(const Digest& d) const {
  return absl::StrCat(dir_, "/blobs/sha256/", d.hex());
}

absl::StatusOr<ResolvedImage> OciLayoutSource::Resolve() {
  const std::string where = absl::StrCat("oci-layout:", dir_);
  SM_ASSIGN_OR_RETURN(std::string index_json, ReadFile(absl::StrCat(dir_, "/index.json"), kMaxSmallBlobBytes));
  auto doc = ParseManifestDocument(index_json, media_types::kOciIndex);
  if (!doc.ok()) {
    return base::Annotate(doc.status(), absl::StrCat(where, "/index.json"));
  }
  const auto* index = std::get_if<ImageIndex>(&*doc);
  if (index == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(where, "/index.json is not an image index"));
  }
  SM_ASSIGN_OR_RETURN(Descriptor entry, SelectLayoutEntry(*index, tag_, digest_, where));
  SmallBlobReader read = [this](const Descriptor& d) {
    return ReadFile(BlobPath(d.digest), kMaxSmallBlobBytes);
  };
  SM_ASSIGN_OR_RETURN(std::string top, ReadVerified(read, entry));
  std::string source = where;
  if (digest_.has_value()) {
    absl::StrAppend(&source, "@", digest_->ToString());
  } else if (!tag_.empty()) {
    absl::StrAppend(&source, ":", tag_);
  }
  return ResolveFromManifest(source, top, entry.media_type, entry.digest, platform_, read);
}

absl::StatusOr<std::vector<IngestResult>> OciLayoutSource::FetchLayers(
    const ResolvedImage& image, const BlobStore& store, const ProgressCallback& progress) {
  std::vector<IngestResult> out;
  for (const Descriptor& layer : image.layers) {
    const std::string path = BlobPath(layer.digest);
    auto result = store.Ingest(layer.digest, layer.size, [&](BlobWriter& w) -> absl::Status {
      base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) {
        return base::ErrnoToStatus(errno, absl::StrCat("open layer ", path));
      }
      std::vector<char> buf(1 << 20);
      for (;;) {
        const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) {
          continue;
        }
        if (n < 0) {
          return base::ErrnoToStatus(errno, absl::StrCat("read layer ", path));
        }
        if (n == 0) {
          return absl::OkStatus();
        }
        SM_RETURN_IF_ERROR(w.Write(buf.data(), static_cast<size_t>(n)));
        if (progress) {
          progress(BlobProgress{.digest = layer.digest, .done = w.written(), .total = layer.size});
        }
      }
    });
    if (!result.ok()) {
      return base::Annotate(result.status(), image.source);
    }
    out.push_back(*std::move(result));
  }
  return out;
}

}  // namespace supermachine::image
