// File: reference_fuzz.cc
// Fuzzes image ref and source-spec parsing. Property: a parsed ref's normalised string parses
// again to the same normalised string (normalisation is idempotent).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "daemon/image/reference.h"
#include "daemon/image/source_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto ref = supermachine::image::ParseReference(text);
  if (ref.ok()) {
    const std::string once = ref->ToString();
    auto again = supermachine::image::ParseReference(once);
    if (!again.ok() || again->ToString() != once) {
      std::fprintf(stderr, "ref normalisation not idempotent: '%s' -> '%s'\n", text.c_str(), once.c_str());
      std::abort();
    }
  }
  auto spec = supermachine::image::ParseSourceSpec(text);
  if (spec.ok()) {
    (void)spec->ToString();
  }
  (void)supermachine::image::IsLoopbackRegistry(text);
  return 0;
}
