// File: tiny_guest.h
// Test support: runs the real supermachine-worker on a tiny hand-written guest (a few
// instructions in an ELF "kernel", tests/unit/worker/test_kernel.h) inside a test's own
// directory. Each worker's stderr lands in <dir>/<name>.stderr so a failing EXPECT can show it;
// a boot waits until the guest has written its marker to the serial file. Shared by the worker
// KSM test and the worker snapshot fault tests, which boot, snapshot and restore such guests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "worker/base/child_process.h"

namespace supermachine::test_support {

// The file's contents; "" while it does not exist yet (a worker creates its serial file as it
// starts, so a poll may run before it is there).
std::string ReadFileIfThere(const std::string& path);

class TinyGuestWorkers {
 public:
  // `worker_bin`: the supermachine-worker to run (tests pass SM_WORKER_BIN); `dir`: where the
  // kernel, control sockets, serial files and stderr logs go (a TempDir's path).
  TinyGuestWorkers(std::string worker_bin, std::string dir);

  // Writes <dir>/kernel: a PVH ELF loaded at 16 MiB whose entry runs `code` (32-bit mode).
  void WriteKernel(const std::vector<uint8_t>& code) const;

  // Starts the worker with `args`, its stderr written to StderrPath(name). Aborts when the
  // worker cannot be started at all (nothing a test could check without it).
  base::ChildProcess Spawn(std::vector<std::string> args, const std::string& name) const;

  // Boots <dir>/kernel with `mem_mib` MiB of RAM, serial output to SerialPath(name) and its
  // control socket at ControlPath(name); returns once the serial output contains `marker`, or
  // after 2 minutes (natively milliseconds; the bound is for a loaded CI machine). Callers
  // check Serial(name) for the marker themselves, so their failure names what they waited for.
  base::ChildProcess Boot(const std::string& name, int mem_mib, const std::string& marker) const;

  std::string ControlPath(const std::string& name) const { return dir_ + "/" + name + ".ctl"; }
  std::string SerialPath(const std::string& name) const { return dir_ + "/" + name + ".serial"; }
  std::string StderrPath(const std::string& name) const { return dir_ + "/" + name + ".stderr"; }
  std::string Serial(const std::string& name) const { return ReadFileIfThere(SerialPath(name)); }
  std::string Stderr(const std::string& name) const { return ReadFileIfThere(StderrPath(name)); }

 private:
  std::string worker_bin_;
  std::string dir_;
};

}  // namespace supermachine::test_support
