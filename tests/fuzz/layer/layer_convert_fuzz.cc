// File: layer_convert_fuzz.cc
// Fuzz target: arbitrary bytes as a layer blob through ConvertLayer (tar/gzip/zstd detection,
// whiteouts, hard links, path checks, squashfs writing), and, when it converts, our own image
// read back. Must never crash, hang or leak; errors are the expected outcome for most inputs.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "daemon/layer/converter.h"
#include "daemon/layer/squashfs_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  char tmpl[] = "/tmp/sm-layer-fuzz-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    return 0;
  }
  const std::string dir = tmpl;
  const std::string in = dir + "/layer";
  const std::string out = dir + "/layer.sqfs";
  if (FILE* f = std::fopen(in.c_str(), "wbe"); f != nullptr) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
    supermachine::layer::ConvertOptions options;
    options.num_workers = 1;
    options.zstd_level = 1;              // Speed over ratio: we fuzz structure, not zstd.
    options.max_entries = 1 << 14;
    options.max_file_bytes = 64 << 20;   // Sparse maps could otherwise ask for terabytes.
    auto stats = supermachine::layer::ConvertLayer(in, out, options);
    if (stats.ok()) {
      auto tree = supermachine::layer::ReadSquashfsTree(out, {.max_content_bytes = 1 << 16});
      if (!tree.ok()) {
        // Our own output must always read back: make this a crash the fuzzer reports.
        std::fprintf(stderr, "converted image does not read back: %s\n",
                     std::string(tree.status().message()).c_str());
        std::abort();
      }
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
