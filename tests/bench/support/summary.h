// File: summary.h
// The benchmarks' summary of a sample: median ± MAD (robust on a shared, noisy machine),
// nearest-rank p50/p99, min/max, n and every value, as JSON (tests/bench/README.md).
#pragma once

#include <vector>

#include "nlohmann/json.hpp"

namespace supermachine::bench {

// {} for an empty sample.
nlohmann::json Summarize(std::vector<double> values);

}  // namespace supermachine::bench
