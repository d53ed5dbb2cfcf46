// File: docker_config_fuzz.cc
// Fuzzes the Docker config.json credential lookup (daemon/image/docker_config.h): the file is
// whatever `docker login` or a user left in $HOME, so every byte is untrusted. Input: the first
// line is the registry to look up, the rest is the config.json text (no newline: all of it is
// the text, looked up for Docker Hub). Beyond "no crash", it checks that Base64 decoding
// inverts encoding for any bytes, since "auth" values go through that pair.
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "daemon/image/docker_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace img = supermachine::image;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const absl::string_view registry =
      nl == absl::string_view::npos ? absl::string_view("registry-1.docker.io")
                                    : input.substr(0, nl);
  const absl::string_view json = nl == absl::string_view::npos ? input : input.substr(nl + 1);

  (void)img::FindDockerCredentials(json, registry);
  // A second lookup under a Hub alias walks the alias matching for the same text.
  (void)img::FindDockerCredentials(json, "docker.io");

  (void)img::Base64Decode(json);
  const std::string encoded = img::Base64Encode(json);
  auto decoded = img::Base64Decode(encoded);
  if (!decoded.ok() || *decoded != json) {
    __builtin_trap();  // Encode → decode must give back the bytes.
  }
  return 0;
}
