// File: archive_sources.h
// Sources read from a tar file with libarchive, never unpacked to disk:
//   `oci-archive:FILE[:TAG]`  a tar of an OCI image layout (skopeo `oci-archive:`, buildkit)
//   `docker-archive:FILE`     `docker save` output (manifest.json + config + layer tars)
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/image/image_source.h"

namespace supermachine::image {

class OciArchiveSource final : public ImageSource {
 public:
  static absl::StatusOr<std::unique_ptr<OciArchiveSource>> Open(std::string file, std::string tag,
                                                                Platform platform);
  // One pass over the archive keeps index.json and every blob up to 4 MiB in memory.
  absl::StatusOr<ResolvedImage> Resolve() override;
  // One more pass streams the missing layer blobs into the store.
  absl::StatusOr<std::vector<IngestResult>> FetchLayers(const ResolvedImage& image,
                                                        const BlobStore& store,
                                                        const ProgressCallback& progress) override;

 private:
  OciArchiveSource(std::string file, std::string tag, Platform platform)
      : file_(std::move(file)), tag_(std::move(tag)), platform_(std::move(platform)) {}
  std::string file_;
  std::string tag_;
  Platform platform_;
};

class DockerArchiveSource final : public ImageSource {
 public:
  static absl::StatusOr<std::unique_ptr<DockerArchiveSource>> Open(std::string file,
                                                                   Platform platform);
  // Reads manifest.json and the config. The archive has no registry manifest: layer digests
  // are the config's diff_ids (layers are uncompressed tars), and the manifest digest is that
  // of an equivalent OCI manifest synthesised here.
  absl::StatusOr<ResolvedImage> Resolve() override;
  absl::StatusOr<std::vector<IngestResult>> FetchLayers(const ResolvedImage& image,
                                                        const BlobStore& store,
                                                        const ProgressCallback& progress) override;

 private:
  DockerArchiveSource(std::string file, Platform platform)
      : file_(std::move(file)), platform_(std::move(platform)) {}
  std::string file_;
  Platform platform_;
  // Layer digest → path inside the archive (symlinks resolved), filled by Resolve.
  std::map<std::string, std::string> layer_paths_;
};

}  // namespace supermachine::image
