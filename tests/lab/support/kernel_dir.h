// File: tests/lab/support/kernel_dir.h
// Where lab tests find the guest kernel: one lookup shared by every lab test.
#pragma once

#include <string>

namespace supermachine::lab {

// The guest kernel dir of this source tree ($SM_KERNEL_DIR, else the last line of
// `kernel/build.sh --print-dir`), or "" when it is not built (the caller fails with that
// reason; it never skips).
std::string KernelDir(const std::string& source_dir);

}  // namespace supermachine::lab
