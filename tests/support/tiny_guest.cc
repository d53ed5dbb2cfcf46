// File: tiny_guest.cc
// Boots, and starts restores of, the real worker on tiny hand-written guests for tests.
#include "tests/support/tiny_guest.h"

#include <fcntl.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/time/clock.h"
#include "tests/unit/worker/test_kernel.h"
#include "worker/base/unique_fd.h"

namespace supermachine::test_support {

std::string ReadFileIfThere(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TinyGuestWorkers::TinyGuestWorkers(std::string worker_bin, std::string dir)
    : worker_bin_(std::move(worker_bin)), dir_(std::move(dir)) {}

void TinyGuestWorkers::WriteKernel(const std::vector<uint8_t>& code) const {
  testing::WriteBytes(dir_ + "/kernel", testing::MakeElfKernel(code, 0x1000000, true));
}

base::ChildProcess TinyGuestWorkers::Spawn(std::vector<std::string> args,
                                           const std::string& name) const {
  args.insert(args.begin(), worker_bin_);
  // The child gets its own copy of the descriptor; ours closes when this returns.
  const base::UniqueFd err(
      open(StderrPath(name).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  auto child = base::ChildProcess::Spawn({.argv = args, .stderr_fd = err.get()});
  if (!child.ok()) {
    std::fprintf(stderr, "cannot start %s: %s\n", worker_bin_.c_str(),
                 child.status().ToString().c_str());
    std::abort();
  }
  return std::move(*child);
}

base::ChildProcess TinyGuestWorkers::Boot(const std::string& name, int mem_mib,
                                          const std::string& marker) const {
  base::ChildProcess w =
      Spawn({"--kernel", dir_ + "/kernel", "--mem-mib", std::to_string(mem_mib), "--serial",
             "file:" + SerialPath(name), "--control", ControlPath(name)},
            name);
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  while (Serial(name).find(marker) == std::string::npos && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  return w;
}

}  // namespace supermachine::test_support
