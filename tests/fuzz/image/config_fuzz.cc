// File: config_fuzz.cc
// Fuzzes image config parsing, launch config resolution over what parses, JSON argv and the
// docker config.json credential lookup.
#include <cstdint>
#include <string>

#include "daemon/image/docker_config.h"
#include "daemon/image/image_config.h"
#include "daemon/image/launch_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace img = supermachine::image;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = img::ParseImageConfig(text);
  if (config.ok()) {
    (void)img::ResolveLaunchConfig(*config, {});
    (void)img::ResolveLaunchConfig(*config, {.entrypoint = std::vector<std::string>{"/bin/sh"},
                                             .extra_env = {"A=1", "PATH=/x"}});
  }
  (void)img::ParseArgvJson(text);
  (void)img::FindDockerCredentials(text, "registry-1.docker.io");
  (void)img::FindDockerCredentials(text, "127.0.0.1:5000");
  (void)img::Base64Decode(text);
  return 0;
}
