// File: summary.cc
#include "tests/bench/support/summary.h"

#include <algorithm>
#include <cmath>

namespace supermachine::bench {

nlohmann::json Summarize(std::vector<double> v) {
  if (v.empty()) {
    return nlohmann::json::object();
  }
  std::sort(v.begin(), v.end());
  auto median = [](const std::vector<double>& x) {
    const size_t n = x.size();
    return n % 2 == 1 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
  };
  auto pct = [&](double p) {
    const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, std::max<size_t>(rank, 1) - 1)];
  };
  const double med = median(v);
  std::vector<double> dev;
  dev.reserve(v.size());
  for (double x : v) {
    dev.push_back(std::fabs(x - med));
  }
  std::sort(dev.begin(), dev.end());
  return {{"median", med}, {"mad", median(dev)}, {"p50", pct(0.50)}, {"p99", pct(0.99)},
          {"min", v.front()}, {"max", v.back()}, {"n", v.size()}, {"values", v}};
}

}  // namespace supermachine::bench
