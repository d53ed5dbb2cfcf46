// File: image_builder.h
// Builds small OCI images for tests: tar layers in memory (libarchive), configs, manifests,
// indexes, written as an OCI image layout, an oci-archive tar, or a docker-archive tar.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "daemon/image/digest.h"
#include "daemon/image/manifest.h"

namespace supermachine::image::testing {

// (path, content) of a regular file in a layer; a path ending in '/' is a directory.
using Files = std::vector<std::pair<std::string, std::string>>;

// An uncompressed tar of `files` (deterministic: fixed mtime, uid 0).
std::string MakeTar(const Files& files);
// gzip of `bytes` (libarchive raw gzip filter over a tar is not wanted here: gzip of the tar).
std::string Gzip(const std::string& bytes);
// A tar archive of the directory `dir` (recursively, paths relative to it).
std::string TarDirectory(const std::string& dir);

Descriptor Describe(const std::string& bytes, const std::string& media_type);

std::string ConfigJson(const Platform& platform, const std::vector<Digest>& diff_ids,
                       const std::vector<std::string>& cmd);
std::string ManifestJson(const Descriptor& config, const std::vector<Descriptor>& layers);
// OCI index; each entry's platform and annotations are written when set.
std::string IndexJson(const std::vector<Descriptor>& manifests);

// A single-platform image: blobs plus the manifest descriptor (platform set).
struct BuiltImage {
  Descriptor manifest;
  std::string manifest_json;
  Descriptor config;
  std::string config_json;
  std::vector<Descriptor> layers;
  std::vector<std::string> layer_blobs;
};
// Layers are gzip-compressed when `gzip` (diff_ids are of the uncompressed tars).
BuiltImage BuildImage(const Platform& platform, const std::vector<Files>& layers,
                      const std::vector<std::string>& cmd, bool gzip = true);

// Writes an OCI layout at `dir`.
class LayoutWriter {
 public:
  explicit LayoutWriter(std::string dir);
  void PutBlob(const std::string& bytes);
  void PutImage(const BuiltImage& image);
  // index.json listing `entries` (their annotations give the tags).
  void WriteIndex(const std::vector<Descriptor>& entries);

 private:
  std::string dir_;
};

// docker save-style archive (legacy layout: <id>/layer.tar, <id>.json, manifest.json).
std::string DockerArchive(const BuiltImage& uncompressed_image, const std::string& repo_tag);

}  // namespace supermachine::image::testing
