// File: tests/lab/support/kernel_dir.cc
#include "tests/lab/support/kernel_dir.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace supermachine::lab {

std::string KernelDir(const std::string& source_dir) {
  if (const char* env = getenv("SM_KERNEL_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  std::string cmd = absl::StrCat(source_dir, "/kernel/build.sh --print-dir 2>/dev/null");
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) {
    return "";
  }
  char buf[4096] = {};
  std::string out;
  while (fgets(buf, sizeof(buf), f) != nullptr) {
    out = buf;  // The last line is the directory.
  }
  int rc = pclose(f);
  return rc == 0 ? std::string(absl::StripAsciiWhitespace(out)) : "";
}

}  // namespace supermachine::lab
