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
  ScrapeHook(DaemonMetrics* owner, prometheus::Gauge* snapshots, SnapshotCounter count,
             std::function<void()> refresh)
      : owner_(owner),
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
    return owner_->CollectAll();
  }

 private:
  DaemonMetrics* owner_;  // outlives the hook: ~DaemonMetrics stops the exposer first
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
  // Counts per state, not a series per VM: ids change at every restart (docs/supervision.md).
  prometheus::Family<prometheus::Gauge>& health =
      prometheus::BuildGauge()
          .Name("supermachine_vms_health")
          .Help("Handed-out VMs with a health check, by state (starting, healthy, unhealthy)")
          .Register(*registry_);
  vms_starting_ = &health.Add({{"state", "starting"}});
  vms_healthy_ = &health.Add({{"state", "healthy"}});
  vms_unhealthy_ = &health.Add({{"state", "unhealthy"}});
  vm_restarts_ = &prometheus::BuildCounter()
                      .Name("supermachine_vm_restarts_total")
                      .Help("Restarts of supervised VMs by their restart policy, by result")
                      .Register(*registry_);
  vms_balloon_inflated_ =
      &prometheus::BuildGauge()
           .Name("supermachine_vms_balloon_inflated")
           .Help("Handed-out VMs whose balloon the idle policy holds inflated now")
           .Register(*registry_)
           .Add({});
  balloon_inflations_ =
      &prometheus::BuildCounter()
           .Name("supermachine_balloon_inflations_total")
           .Help("Idle VMs whose worker accepted the idle policy's balloon target")
           .Register(*registry_)
           .Add({});
}

DaemonMetrics::~DaemonMetrics() = default;

absl::Status DaemonMetrics::Serve(const std::string& address, SnapshotCounter count_snapshots,
                                  std::function<void()> refresh) {
  hook_ = std::make_shared<ScrapeHook>(this, snapshots_, std::move(count_snapshots),
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

void DaemonMetrics::SetVmsHealth(int64_t starting, int64_t healthy, int64_t unhealthy) {
  vms_starting_->Set(static_cast<double>(starting));
  vms_healthy_->Set(static_cast<double>(healthy));
  vms_unhealthy_->Set(static_cast<double>(unhealthy));
}

void DaemonMetrics::CountVmRestart(bool ok) {
  vm_restarts_->Add({{"result", ok ? "ok" : "failed"}}).Increment();
}

void DaemonMetrics::SetVmsBalloonInflated(int64_t n) {
  vms_balloon_inflated_->Set(static_cast<double>(n));
}

void DaemonMetrics::CountBalloonInflation() { balloon_inflations_->Increment(); }

void DaemonMetrics::SetPool(const std::string& snapshot, int64_t ready, int64_t in_use) {
  pool_vms_->Add({{"snapshot", snapshot}, {"state", "ready"}}).Set(static_cast<double>(ready));
  pool_vms_->Add({{"snapshot", snapshot}, {"state", "in_use"}}).Set(static_cast<double>(in_use));
}

void DaemonMetrics::SetVmNetSource(VmNetSource source) {
  absl::MutexLock lock(&net_mu_);
  vm_net_source_ = std::move(source);
}

std::vector<prometheus::MetricFamily> DaemonMetrics::CollectAll() {
  std::vector<prometheus::MetricFamily> out = registry_->Collect();
  std::vector<VmNetSample> samples;
  {
    absl::MutexLock lock(&net_mu_);
    if (!vm_net_source_) {
      return out;
    }
    samples = vm_net_source_();
  }
  // The worker's counters are monotonic for the worker's life, which is the VM's: counters.
  struct Series {
    const char* name;
    const char* help;
    uint64_t VmNetStats::*value;
  };
  static constexpr Series kSeries[] = {
      {"supermachine_vm_net_rx_bytes_total",
       "Ethernet frame bytes delivered to the VM (network to guest, incl. our RST/ICMP replies)",
       &VmNetStats::rx_bytes},
      {"supermachine_vm_net_rx_packets_total", "Frames delivered to the VM",
       &VmNetStats::rx_packets},
      {"supermachine_vm_net_tx_bytes_total",
       "Ethernet frame bytes the VM sent that passed its egress policy", &VmNetStats::tx_bytes},
      {"supermachine_vm_net_tx_packets_total", "Frames the VM sent that passed its egress policy",
       &VmNetStats::tx_packets},
      {"supermachine_vm_net_dropped_policy_total",
       "Frames from the VM dropped because its egress policy refuses the destination",
       &VmNetStats::dropped_policy},
      {"supermachine_vm_net_dropped_malformed_total",
       "Frames from the VM dropped as malformed (truncated headers, bogus lengths)",
       &VmNetStats::dropped_malformed},
  };
  for (const Series& series : kSeries) {
    prometheus::MetricFamily f{.name = series.name,
                               .help = series.help,
                               .type = prometheus::MetricType::Counter};
    for (const VmNetSample& s : samples) {
      if (!s.stats.enabled) {
        continue;
      }
      prometheus::ClientMetric m;
      m.label = {{"snapshot", s.snapshot}, {"vm", s.vm_id}};
      m.counter.value = static_cast<double>(s.stats.*series.value);
      f.metric.push_back(std::move(m));
    }
    out.push_back(std::move(f));
  }
  // The build-info idiom again: what each VM's network is, as labels on a constant 1.
  prometheus::MetricFamily info{.name = "supermachine_vm_net_info",
                                .help = "A VM's network device: MAC and enforced egress policy; "
                                        "the value is always 1",
                                .type = prometheus::MetricType::Gauge};
  for (const VmNetSample& s : samples) {
    if (!s.stats.enabled) {
      continue;
    }
    prometheus::ClientMetric m;
    m.label = {{"egress_policy", s.stats.egress_policy},
               {"mac", s.stats.mac},
               {"snapshot", s.snapshot},
               {"vm", s.vm_id}};
    m.gauge.value = 1;
    info.metric.push_back(std::move(m));
  }
  out.push_back(std::move(info));
  return out;
}

std::string DaemonMetrics::SerializeForTest() {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(CollectAll());
}

}  // namespace supermachine::metrics
