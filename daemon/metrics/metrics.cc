// File: metrics.cc
#include "daemon/metrics/metrics.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace supermachine::metrics {

// What the exposer collects: refreshes store-backed gauges, then hands over the registry's
// families. Registered instead of the registry itself so the refresh happens per scrape.
class DaemonMetrics::ScrapeHook : public prometheus::Collectable {
 public:
  ScrapeHook(std::shared_ptr<prometheus::Registry> registry, prometheus::Gauge* snapshots,
             SnapshotCounter count, std::function<void()> refresh)
      : registry_(std::move(registry)),
        snapshots_(snapshots),
        count_(std::move(count)),
        refresh_(std::move(refresh)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    if (count_) {
      int64_t n = count_();
      if (n >= 0) {
        snapshots_->Set(static_cast<double>(n));
      }
    }
    if (refresh_) {
      refresh_();
    }
    return registry_->Collect();
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* snapshots_;
  SnapshotCounter count_;
  std::function<void()> refresh_;
};

DaemonMetrics::DaemonMetrics(const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  // The build-info idiom: a constant 1 whose labels carry the version, so dashboards can join
  // on it and alert on mixed versions.
  prometheus::BuildGauge()
      .Name("supermachine_build_info")
      .Help("Build information of supermachined; the value is always 1")
      .Register(*registry_)
      .Add({{"version", version}, {"api", "supermachine.v1"}})
      .Set(1);
  rpcs_ = &prometheus::BuildCounter()
               .Name("supermachine_rpcs_total")
               .Help("Finished gRPC calls of the supermachine.v1 API by method and status code")
               .Register(*registry_);
  snapshots_ = &prometheus::BuildGauge()
                    .Name("supermachine_snapshots")
                    .Help("Snapshots recorded in the store")
                    .Register(*registry_)
                    .Add({});
  // Buckets from a pool hit (well under 10 ms) to a slow restore under nested virtualisation.
  acquire_seconds_ = &prometheus::BuildHistogram()
                          .Name("supermachine_acquire_seconds")
                          .Help("Acquire latency, by pool_hit (a ready VM) or not (restored on demand)")
                          .Register(*registry_);
  worker_crashes_ = &prometheus::BuildCounter()
                         .Name("supermachine_worker_crashes_total")
                         .Help("Handed-out or pooled VMs whose worker process died on its own")
                         .Register(*registry_)
                         .Add({});
  vms_running_ = &prometheus::BuildGauge()
                      .Name("supermachine_vms_running")
                      .Help("VMs handed out by Acquire and not yet released")
                      .Register(*registry_)
                      .Add({});
  pool_vms_ = &prometheus::BuildGauge()
                   .Name("supermachine_pool_vms")
                   .Help("VMs of each snapshot's pool by state (ready, in_use)")
                   .Register(*registry_);
}

DaemonMetrics::~DaemonMetrics() = default;

absl::Status DaemonMetrics::Serve(const std::string& address, SnapshotCounter count_snapshots,
                                  std::function<void()> refresh) {
  hook_ = std::make_shared<ScrapeHook>(registry_, snapshots_, std::move(count_snapshots),
                                       std::move(refresh));
  // prometheus-cpp (civetweb) reports a failed bind by throwing; keep it inside this library.
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics address ", address, ": cannot listen (", e.what(),
                     "); choose another with --metrics-address or disable it with --metrics-address \"\""));
  }
  exposer_->RegisterCollectable(hook_);
  return absl::OkStatus();
}

int DaemonMetrics::port() const {
  if (exposer_ == nullptr) {
    return 0;
  }
  std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void DaemonMetrics::CountRpc(const std::string& method, const std::string& code) {
  rpcs_->Add({{"method", method}, {"code", code}}).Increment();
}

void DaemonMetrics::SetSnapshots(int64_t n) { snapshots_->Set(static_cast<double>(n)); }

void DaemonMetrics::ObserveAcquire(bool pool_hit, double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  acquire_seconds_->Add({{"pool_hit", pool_hit ? "true" : "false"}}, kBuckets).Observe(seconds);
}

void DaemonMetrics::CountWorkerCrash() { worker_crashes_->Increment(); }

void DaemonMetrics::SetVmsRunning(int64_t n) { vms_running_->Set(static_cast<double>(n)); }

void DaemonMetrics::SetPool(const std::string& snapshot, int64_t ready, int64_t in_use) {
  pool_vms_->Add({{"snapshot", snapshot}, {"state", "ready"}}).Set(static_cast<double>(ready));
  pool_vms_->Add({{"snapshot", snapshot}, {"state", "in_use"}}).Set(static_cast<double>(in_use));
}

std::string DaemonMetrics::SerializeForTest() {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

}  // namespace supermachine::metrics
