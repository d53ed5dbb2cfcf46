// File: metrics.h
// DaemonMetrics: the daemon's Prometheus registry and its HTTP exporter (prometheus-cpp pull).
// Families live here so every domain counts through one object made in main, not a global.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace supermachine::metrics {

class DaemonMetrics {
 public:
  // Called at every scrape to refresh gauges that mirror the store (snapshot count), so the
  // value is current without a background timer. Returns -1 when the store cannot answer
  // (the gauge then keeps its last value).
  using SnapshotCounter = std::function<int64_t()>;

  // Registry only (no HTTP listener): for tests and for `--metrics-address ""`.
  explicit DaemonMetrics(const std::string& version);
  ~DaemonMetrics();

  // Starts the exporter on HOST:PORT (port 0 picks a free one). Unavailable with the address
  // when it cannot bind.
  absl::Status Serve(const std::string& address, SnapshotCounter count_snapshots);
  // The port the exporter listens on (useful with port 0), 0 when not serving.
  int port() const;

  void CountRpc(const std::string& method, const std::string& code);
  void SetSnapshots(int64_t n);

  // The text exposition of everything registered (what /metrics serves).
  std::string SerializeForTest();

 private:
  class ScrapeHook;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* rpcs_;
  prometheus::Gauge* snapshots_;
  std::shared_ptr<ScrapeHook> hook_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace supermachine::metrics
