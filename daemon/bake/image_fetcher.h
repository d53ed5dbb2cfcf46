// File: image_fetcher.h
// The real ImageFetcher (baker.h): daemon/image's sources + blob store + ref cache + registry
// client, then daemon/layer's LayerCache for the squashfs of each layer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/bake/baker.h"

namespace supermachine::bake {

struct ImageFetcherOptions {
  std::string image_cache_dir;  // blobs/ + refs/
  std::string layer_cache_dir;
  std::vector<std::string> insecure_registries;
  std::string docker_config_path;
};

absl::StatusOr<std::shared_ptr<ImageFetcher>> MakeImageFetcher(const ImageFetcherOptions& options);

}  // namespace supermachine::bake
