// File: temp_dir.h
// The image tests' names for the shared test helpers (tests/support/temp_dir.h).
#pragma once

#include "tests/support/temp_dir.h"

namespace supermachine::image::testing {

using ::supermachine::test_support::ListDir;
using ::supermachine::test_support::ReadFileOrDie;
using ::supermachine::test_support::TempDir;
using ::supermachine::test_support::WriteFileOrDie;

}  // namespace supermachine::image::testing
