// File: sm_layer_convert.cc
// sm-layer-convert IN.tar[.gz|.zst] OUT.sqfs: converts one OCI layer with the library the
// daemon uses and prints its statistics (as JSON with --json), for benchmarks and debugging.
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "daemon/layer/converter.h"

int main(int argc, char** argv) {
  CLI::App app{"Convert an OCI layer tar into a squashfs image"};
  std::string input;
  std::string output;
  supermachine::layer::ConvertOptions options;
  bool json = false;
  app.add_option("input", input, "layer blob: tar, tar+gzip or tar+zstd")->required();
  app.add_option("output", output, "squashfs image to write")->required();
  app.add_option("--media-type", options.media_type, "declared OCI media type to check");
  app.add_option("--workers", options.num_workers, "compression threads (0 = one per CPU)");
  app.add_option("--level", options.zstd_level, "zstd level (1-22)");
  app.add_flag("--json", json, "print statistics as JSON");
  CLI11_PARSE(app, argc, argv);

  auto stats = supermachine::layer::ConvertLayer(input, output, options);
  if (!stats.ok()) {
    std::fprintf(stderr, "sm-layer-convert: %s\n", std::string(stats.status().message()).c_str());
    return 1;
  }
  const double seconds = absl::ToDoubleSeconds(stats->duration);
  if (json) {
    std::printf("%s\n",
                absl::StrFormat(R"({"entries":%d,"bytes_in":%d,"bytes_uncompressed":%d,)"
                                R"("bytes_out":%d,"compression":"%s","seconds":%.3f})",
                                stats->entries, stats->bytes_in, stats->bytes_uncompressed,
                                stats->bytes_out,
                                supermachine::layer::CompressionName(stats->compression), seconds)
                    .c_str());
  } else {
    std::printf("%s\n",
                absl::StrFormat("%d entries, %d bytes in (%s, %d uncompressed), %d bytes out, "
                                "%.3f s",
                                stats->entries, stats->bytes_in,
                                supermachine::layer::CompressionName(stats->compression),
                                stats->bytes_uncompressed, stats->bytes_out, seconds)
                    .c_str());
  }
  return 0;
}
