// File: oci_layout_source.h
// `oci-layout:DIR[:TAG|@DIGEST]`: an OCI image layout directory (umoci, skopeo `oci:`,
// buildkit `type=oci,tar=false`).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/image/image_source.h"

namespace supermachine::image {

class OciLayoutSource final : public ImageSource {
 public:
  // Checks DIR/oci-layout and DIR/index.json exist (NotFound otherwise).
  static absl::StatusOr<std::unique_ptr<OciLayoutSource>> Open(std::string dir, std::string tag,
                                                               std::optional<Digest> digest,
                                                               Platform platform);

  // The index.json entry is picked by digest, else by its org.opencontainers.image.ref.name
  // annotation == tag, else (no tag given) the only entry. NotFound lists the tags present.
  absl::StatusOr<ResolvedImage> Resolve() override;
  // Copies each layer into the store while hashing (the layout's files are not trusted).
  absl::StatusOr<std::vector<IngestResult>> FetchLayers(const ResolvedImage& image,
                                                        const BlobStore& store,
                                                        const ProgressCallback& progress) override;

 private:
  OciLayoutSource(std::string dir, std::string tag, std::optional<Digest> digest, Platform platform)
      : dir_(std::move(dir)), tag_(std::move(tag)), digest_(digest), platform_(std::move(platform)) {}
  std::string BlobPath(const Digest& d) const;
  std::string dir_;
  std::string tag_;
  std::optional<Digest> digest_;
  Platform platform_;
};

// Picks the index.json entry for a tag/digest (shared with the oci-archive source).
absl::StatusOr<Descriptor> SelectLayoutEntry(const ImageIndex& index, const std::string& tag,
                                             const std::optional<Digest>& digest,
                                             const std::string& where);

inline constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";

}  // namespace supermachine::image
