// File: metrics.h
// DaemonMetrics: the daemon's Prometheus registry and its HTTP exporter (prometheus-cpp pull).
// Families live here so every domain counts through one object made in main, not a global.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/metrics/vm_net_stats.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace supermachine::metrics {

class DaemonMetrics {
 public:
  // Called at every scrape to refresh gauges that mirror the store (snapshot count), so the
  // value is current without a background timer. Returns -1 when the store cannot answer
  // (the gauge then keeps its last value).
  using SnapshotCounter = std::function<int64_t()>;

  // One handed-out VM's network counters, as its worker reported them at this scrape.
  struct VmNetSample {
    std::string vm_id;
    std::string snapshot;
    VmNetStats stats;
  };
  // Called at every scrape for the per-VM network series (supermachine_vm_net_*): they are
  // built from what it returns, so a released VM's series disappear with it and the worker's
  // counters are never copied into state here.
  using VmNetSource = std::function<std::vector<VmNetSample>()>;

  // Registry only (no HTTP listener): for tests and for `--metrics-address ""`.
  explicit DaemonMetrics(const std::string& version);
  ~DaemonMetrics();

  // Starts the exporter on HOST:PORT (port 0 picks a free one). Unavailable with the address
  // when it cannot bind.
  // `refresh` (optional) runs at every scrape too, to set the VM and pool gauges.
  absl::Status Serve(const std::string& address, SnapshotCounter count_snapshots,
                     std::function<void()> refresh = nullptr);
  // The port the exporter listens on (useful with port 0), 0 when not serving.
  int port() const;

  void CountRpc(const std::string& method, const std::string& code);
  void SetSnapshots(int64_t n);
  // Acquire latency by whether a ready pooled VM was handed out (hit) or one was restored.
  void ObserveAcquire(bool pool_hit, double seconds);
  void CountWorkerCrash();
  void SetVmsRunning(int64_t n);
  // Supervised VMs (docs/supervision.md): how many are in each health state, and restarts
  // (ok: the fresh restore runs; failed: it will be retried or the policy gives up).
  void SetVmsHealth(int64_t starting, int64_t healthy, int64_t unhealthy);
  void CountVmRestart(bool ok);
  // The idle-VM balloon policy (docs/balloon.md "Daemon policy"): VMs inflated now, and
  // inflations the workers accepted.
  void SetVmsBalloonInflated(int64_t n);
  void CountBalloonInflation();
  // Per pooled snapshot: ready (restored, waiting) and in use (handed out) VMs.
  void SetPool(const std::string& snapshot, int64_t ready, int64_t in_use);
  // Where the per-VM network series come from (unset: none are exported).
  void SetVmNetSource(VmNetSource source);

  // The text exposition of everything registered (what /metrics serves).
  std::string SerializeForTest();

 private:
  class ScrapeHook;
  // The registry's families plus the per-VM network ones of this scrape.
  std::vector<prometheus::MetricFamily> CollectAll();

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* rpcs_;
  prometheus::Gauge* snapshots_;
  prometheus::Family<prometheus::Histogram>* acquire_seconds_;
  prometheus::Counter* worker_crashes_;
  prometheus::Gauge* vms_running_;
  prometheus::Gauge* vms_starting_;
  prometheus::Gauge* vms_healthy_;
  prometheus::Gauge* vms_unhealthy_;
  prometheus::Family<prometheus::Counter>* vm_restarts_;
  prometheus::Gauge* vms_balloon_inflated_;
  prometheus::Counter* balloon_inflations_;
  prometheus::Family<prometheus::Gauge>* pool_vms_;
  absl::Mutex net_mu_;
  VmNetSource vm_net_source_ ABSL_GUARDED_BY(net_mu_);
  std::shared_ptr<ScrapeHook> hook_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace supermachine::metrics
