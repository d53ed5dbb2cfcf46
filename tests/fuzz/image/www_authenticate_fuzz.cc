// File: www_authenticate_fuzz.cc
// Fuzzes the WWW-Authenticate challenge parser (attacker-controlled registry header).
#include <cstdint>
#include <string>

#include "daemon/image/www_authenticate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto challenges = supermachine::image::ParseWwwAuthenticate(text);
  if (challenges.ok()) {
    for (const auto& c : *challenges) {
      (void)c.Param("realm");
    }
  }
  return 0;
}
