// File: archive_sources.cc
// oci-archive and docker-archive sources over TarReader.
#include "daemon/image/archive_sources.h"

#include <sys/stat.h>

#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "daemon/image/json_util.h"
#include "daemon/image/media_types.h"
#include "daemon/image/oci_layout_source.h"
#include "daemon/image/tar_reader.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {
namespace {

// Cap on what one pass keeps in memory (index, manifests, configs, tiny layers).
constexpr int64_t kMaxInMemoryTotal = 64 << 20;

absl::Status CheckFile(const std::string& kind, const std::string& file) {
  struct stat st;
  if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat(kind, ":", file, ": no such archive file"));
  }
  return absl::OkStatus();
}

// Every regular JSON entry (first byte '{' or '[') up to kMaxSmallBlobBytes, by normalised
// path: index.json, manifests, configs, manifest.json. Layers (tar, gzip, zstd) never start
// with either byte, so they are skipped after their first chunk and never held in memory.
absl::StatusOr<std::map<std::string, std::string>> ReadSmallEntries(
    const std::string& file, std::map<std::string, TarEntry>* all) {
  SM_ASSIGN_OR_RETURN(TarReader tar, TarReader::Open(file));
  std::map<std::string, std::string> small;
  int64_t total = 0;
  TarEntry e;
  for (;;) {
    SM_ASSIGN_OR_RETURN(bool more, tar.Next(&e));
    if (!more) {
      break;
    }
    if (all != nullptr) {
      (*all)[e.path] = e;
    }
    if (!e.regular || e.size > kMaxSmallBlobBytes || e.size == 0) {
      continue;
    }
    if (total + e.size > kMaxInMemoryTotal) {
      return absl::ResourceExhaustedError(absl::StrCat(
          file, ": more than ", kMaxInMemoryTotal, " bytes of JSON metadata; not an image archive?"));
    }
    std::string data;
    bool json = true;
    absl::Status read = tar.ReadData([&](absl::string_view chunk) -> absl::Status {
      if (data.empty() && !chunk.empty() &&
          absl::string_view("{[ \t\r\n").find(chunk.front()) == absl::string_view::npos) {
        json = false;
        return absl::CancelledError();  // not JSON: stop reading this entry
      }
      data.append(chunk.data(), chunk.size());
      return absl::OkStatus();
    });
    if (!json) {
      continue;
    }
    SM_RETURN_IF_ERROR(read);
    total += static_cast<int64_t>(data.size());
    small[e.path] = std::move(data);
  }
  return small;
}

// Resolves "a/../b", "./x" and a symlink chain within the archive.
std::string ResolveArchivePath(const std::map<std::string, TarEntry>& all, std::string path) {
  for (int hops = 0; hops < 8; ++hops) {
    auto it = all.find(path);
    if (it == all.end() || !(it->second.symlink || it->second.hardlink)) {
      return path;
    }
    std::string target = it->second.link_target;
    if (it->second.symlink && !absl::StartsWith(target, "/")) {
      const size_t slash = path.rfind('/');
      target = slash == std::string::npos ? target : absl::StrCat(path.substr(0, slash + 1), target);
    }
    std::vector<std::string> parts;
    for (absl::string_view p : absl::StrSplit(target, '/', absl::SkipEmpty())) {
      if (p == ".") {
        continue;
      }
      if (p == "..") {
        if (!parts.empty()) {
          parts.pop_back();
        }
        continue;
      }
      parts.emplace_back(p);
    }
    path = absl::StrJoin(parts, "/");
  }
  return path;
}

// Second pass: streams entries named in `wanted` (archive path → descriptor) into the store.
absl::StatusOr<std::map<std::string, IngestResult>> StreamEntries(
    const std::string& file, const std::map<std::string, Descriptor>& wanted,
    const BlobStore& store, const ProgressCallback& progress) {
  std::map<std::string, IngestResult> done;
  SM_ASSIGN_OR_RETURN(TarReader tar, TarReader::Open(file));
  TarEntry e;
  for (;;) {
    SM_ASSIGN_OR_RETURN(bool more, tar.Next(&e));
    if (!more) {
      break;
    }
    auto it = wanted.find(e.path);
    if (it == wanted.end() || !e.regular || done.count(e.path) != 0) {
      continue;
    }
    const Descriptor& d = it->second;
    auto r = store.Ingest(d.digest, d.size, [&](BlobWriter& w) {
      return tar.ReadData([&](absl::string_view chunk) -> absl::Status {
        SM_RETURN_IF_ERROR(w.Write(chunk));
        if (progress) {
          progress(BlobProgress{.digest = d.digest, .done = w.written(), .total = d.size});
        }
        return absl::OkStatus();
      });
    });
    if (!r.ok()) {
      return base::Annotate(r.status(), absl::StrCat(file, ": ", e.path));
    }
    done[e.path] = *std::move(r);
  }
  return done;
}

}  // namespace

// ---- oci-archive ----

absl::StatusOr<std::unique_ptr<OciArchiveSource>> OciArchiveSource::Open(std::string file,
                                                                         std::string tag,
                                                                         Platform platform) {
  SM_RETURN_IF_ERROR(CheckFile("oci-archive", file));
  return std::unique_ptr<OciArchiveSource>(
      new OciArchiveSource(std::move(file), std::move(tag), std::move(platform)));
}

absl::StatusOr<ResolvedImage> OciArchiveSource::Resolve() {
  const std::string where = absl::StrCat("oci-archive:", file_);
  auto small = ReadSmallEntries(file_, nullptr);
  if (!small.ok()) {
    return base::Annotate(small.status(), where);
  }
  auto index_it = small->find("index.json");
  if (index_it == small->end() || small->find("oci-layout") == small->end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not an OCI layout archive (missing index.json or oci-layout)"));
  }
  auto doc = ParseManifestDocument(index_it->second, media_types::kOciIndex);
  if (!doc.ok()) {
    return base::Annotate(doc.status(), absl::StrCat(where, ": index.json"));
  }
  const auto* index = std::get_if<ImageIndex>(&*doc);
  if (index == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": index.json is not an image index"));
  }
  SM_ASSIGN_OR_RETURN(Descriptor entry, SelectLayoutEntry(*index, tag_, std::nullopt, where));
  const auto& blobs = *small;
  SmallBlobReader read = [&blobs, &where](const Descriptor& d) -> absl::StatusOr<std::string> {
    auto it = blobs.find(absl::StrCat("blobs/sha256/", d.digest.hex()));
    if (it == blobs.end()) {
      return absl::NotFoundError(absl::StrCat(where, ": blob ", d.digest.ToString(), " missing from the archive"));
    }
    return it->second;
  };
  SM_ASSIGN_OR_RETURN(std::string top, ReadVerified(read, entry));
  return ResolveFromManifest(tag_.empty() ? where : absl::StrCat(where, ":", tag_), top,
                             entry.media_type, entry.digest, platform_, read);
}

absl::StatusOr<std::vector<IngestResult>> OciArchiveSource::FetchLayers(
    const ResolvedImage& image, const BlobStore& store, const ProgressCallback& progress) {
  std::map<std::string, Descriptor> wanted;
  for (const Descriptor& d : image.layers) {
    if (!store.ContainsVerified(d.digest)) {
      wanted[absl::StrCat("blobs/sha256/", d.digest.hex())] = d;
    }
  }
  std::map<std::string, IngestResult> streamed;
  if (!wanted.empty()) {
    SM_ASSIGN_OR_RETURN(streamed, StreamEntries(file_, wanted, store, progress));
  }
  std::vector<IngestResult> out;
  for (const Descriptor& d : image.layers) {
    auto it = streamed.find(absl::StrCat("blobs/sha256/", d.digest.hex()));
    if (it != streamed.end()) {
      out.push_back(it->second);
    } else if (store.Contains(d.digest)) {
      out.push_back(IngestResult{.path = store.PathFor(d.digest), .size = d.size, .already_present = true});
    } else {
      return absl::NotFoundError(absl::StrCat(image.source, ": layer ", d.digest.ToString(),
                                              " missing from the archive"));
    }
  }
  return out;
}

// ---- docker-archive ----

absl::StatusOr<std::unique_ptr<DockerArchiveSource>> DockerArchiveSource::Open(std::string file,
                                                                               Platform platform) {
  SM_RETURN_IF_ERROR(CheckFile("docker-archive", file));
  return std::unique_ptr<DockerArchiveSource>(new DockerArchiveSource(std::move(file), std::move(platform)));
}

absl::StatusOr<ResolvedImage> DockerArchiveSource::Resolve() {
  const std::string where = absl::StrCat("docker-archive:", file_);
  std::map<std::string, TarEntry> all;
  auto small = ReadSmallEntries(file_, &all);
  if (!small.ok()) {
    return base::Annotate(small.status(), where);
  }
  auto manifest_it = small->find("manifest.json");
  if (manifest_it == small->end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not a `docker save` archive (missing manifest.json)"));
  }
  SM_ASSIGN_OR_RETURN(nlohmann::json j, json_util::Parse(manifest_it->second, absl::StrCat(where, ": manifest.json")));
  if (!j.is_array() || j.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": manifest.json must be a non-empty array"));
  }
  if (j.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": archive holds ", j.size(),
                                                   " images; save one image per archive"));
  }
  const nlohmann::json& m = j[0];
  if (!m.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": manifest.json entry must be an object"));
  }
  const std::string what = absl::StrCat(where, ": manifest.json");
  SM_ASSIGN_OR_RETURN(std::string config_path, json_util::RequiredString(m, "Config", what));
  SM_ASSIGN_OR_RETURN(auto layer_paths, json_util::OptionalStringArray(m, "Layers", what));
  config_path = ResolveArchivePath(all, config_path);
  auto config_it = small->find(config_path);
  if (config_it == small->end()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": config ", config_path, " missing from the archive"));
  }
  ResolvedImage out{.source = where, .manifest_media_type = media_types::kOciManifest};
  out.config_json = config_it->second;
  auto config = ParseImageConfig(out.config_json);
  if (!config.ok()) {
    return base::Annotate(config.status(), where);
  }
  out.config = *std::move(config);
  out.config_descriptor = Descriptor{.media_type = media_types::kOciConfig,
                                     .digest = Sha256Of(out.config_json),
                                     .size = static_cast<int64_t>(out.config_json.size())};
  const std::vector<std::string> layers = layer_paths.value_or(std::vector<std::string>{});
  if (layers.size() != out.config.diff_ids.size()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": manifest.json lists ", layers.size(),
                                                   " layers but the config has ", out.config.diff_ids.size(),
                                                   " diff_ids"));
  }
  nlohmann::json synth = {{"schemaVersion", 2},
                          {"mediaType", media_types::kOciManifest},
                          {"config", {{"mediaType", media_types::kOciConfig},
                                      {"digest", out.config_descriptor.digest.ToString()},
                                      {"size", out.config_descriptor.size}}},
                          {"layers", nlohmann::json::array()}};
  layer_paths_.clear();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string path = ResolveArchivePath(all, layers[i]);
    auto e = all.find(path);
    if (e == all.end() || !e->second.regular) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": layer ", layers[i], " missing from the archive"));
    }
    Descriptor d{.media_type = media_types::kOciLayerTar, .digest = out.config.diff_ids[i], .size = e->second.size};
    layer_paths_[d.digest.hex()] = path;
    synth["layers"].push_back({{"mediaType", d.media_type}, {"digest", d.digest.ToString()}, {"size", d.size}});
    out.layers.push_back(std::move(d));
  }
  out.manifest_digest = Sha256Of(synth.dump());
  out.platform = Platform{.os = out.config.os, .architecture = out.config.architecture, .variant = out.config.variant};
  if (!out.config.architecture.empty() && out.config.architecture != platform_.architecture) {
    return absl::FailedPreconditionError(absl::StrCat(where, ": image is for ", out.platform.ToString(),
                                                      ", this host needs ", platform_.ToString()));
  }
  return out;
}

absl::StatusOr<std::vector<IngestResult>> DockerArchiveSource::FetchLayers(
    const ResolvedImage& image, const BlobStore& store, const ProgressCallback& progress) {
  std::map<std::string, Descriptor> wanted;
  for (const Descriptor& d : image.layers) {
    auto p = layer_paths_.find(d.digest.hex());
    if (p == layer_paths_.end()) {
      return absl::FailedPreconditionError(absl::StrCat(image.source, ": FetchLayers before Resolve"));
    }
    if (!store.ContainsVerified(d.digest)) {
      wanted[p->second] = d;
    }
  }
  std::map<std::string, IngestResult> streamed;
  if (!wanted.empty()) {
    SM_ASSIGN_OR_RETURN(streamed, StreamEntries(file_, wanted, store, progress));
  }
  std::vector<IngestResult> out;
  for (const Descriptor& d : image.layers) {
    auto it = streamed.find(layer_paths_[d.digest.hex()]);
    if (it != streamed.end()) {
      out.push_back(it->second);
    } else if (store.Contains(d.digest)) {
      out.push_back(IngestResult{.path = store.PathFor(d.digest), .size = d.size, .already_present = true});
    } else {
      return absl::NotFoundError(absl::StrCat(image.source, ": layer ", d.digest.ToString(), " not found"));
    }
  }
  return out;
}

}  // namespace supermachine::image
