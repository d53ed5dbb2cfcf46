// File: vm_rpcs.cc
// Acquire, Release, InspectVM, WriteFile, ReadFile and Logs: validate, call the VM manager, the
// VM's agent or its worker, convert. Exec is in exec_bridge.cc.
#include "daemon/api/vm_rpcs.h"

#include <algorithm>
#include <cerrno>
#include <memory>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "daemon/agent/agent_client.h"
#include "daemon/api/service.h"
#include "daemon/metrics/vm_net_stats.h"
#include "daemon/vm/console_log_reader.h"
#include "worker/base/status_macros.h"
#include "worker/net/egress_policy.h"

namespace supermachine::api {
namespace {

// File RPCs carry their content in one message; gRPC's default receive limit is 4 MiB.
constexpr uint64_t kMaxReadFileBytes = 3u << 20;
// Guest file operations without a client deadline get this bound (they are short by nature;
// Exec, which is not, never gets a hidden one).
constexpr absl::Duration kFileOpTimeout = absl::Seconds(60);
constexpr absl::Duration kLogPoll = absl::Milliseconds(100);
constexpr size_t kLogChunk = size_t{32} * 1024;
// The worker answers `stats` from its event loop at once; this only bounds a wedged worker.
constexpr absl::Duration kStatsTimeout = absl::Seconds(5);

absl::Time ContextDeadline(const grpc::ServerContext* ctx) {
  auto d = ctx->deadline();
  if (d == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(d);
}

absl::Time FileOpDeadline(const grpc::ServerContext* ctx) {
  return std::min(ContextDeadline(ctx), absl::Now() + kFileOpTimeout);
}

absl::Status RequireVmId(const std::string& id) {
  if (id.empty()) {
    return absl::InvalidArgumentError("vm_id is required (see `smctl ps`)");
  }
  return absl::OkStatus();
}

absl::Status RequireGuestPath(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("guest path '", path, "' must be absolute (start with /)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<vm::AcquireOptions> AcquireOptionsFromProto(const v1::AcquireRequest& req,
                                                           absl::Time rpc_deadline) {
  if (req.snapshot().empty()) {
    return absl::InvalidArgumentError("snapshot is required: a snapshot name or an image ref");
  }
  if (!req.env().empty()) {
    return absl::InvalidArgumentError(
        "env cannot change at acquire: a pooled VM must equal a fresh one, and the workload's "
        "environment is captured in the snapshot; bake with the env instead (smctl bake --env)");
  }
  vm::AcquireOptions out;
  if (!req.egress_policy().empty()) {
    // Canonical text: two spellings of one policy share a pool (the pool key holds it).
    absl::StatusOr<net::EgressPolicy> policy = net::ParseEgressPolicy(req.egress_policy());
    if (!policy.ok()) {
      // The parser's message quotes the value and lists the accepted forms.
      return absl::InvalidArgumentError(policy.status().message());
    }
    out.egress_policy = net::ToString(*policy);
  }
  out.snapshot = req.snapshot();
  out.no_bake = req.no_bake();
  out.name = req.name();
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [k, v] : req.labels()) {
    labels[k] = v;
  }
  out.labels_json = labels.dump();
  for (const v1::PortForward& p : req.ports()) {
    if (p.guest_port() == 0 || p.guest_port() > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("guest port ", p.guest_port(), " is not a TCP port (1-65535)"));
    }
    if (p.host_port() > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("host port ", p.host_port(), " is not a TCP port (0-65535, 0: any)"));
    }
    out.ports.push_back(vm::PortSpec{.host_address = p.host_address(),
                                     .host_port = static_cast<uint16_t>(p.host_port()),
                                     .guest_port = p.guest_port()});
  }
  absl::StatusOr<vm::RestartPolicy> restart = vm::ParseRestartPolicy(req.restart_policy());
  if (!restart.ok()) {
    return restart.status();
  }
  out.restart = *restart;
  for (const std::string& v : req.volumes()) {
    SM_ASSIGN_OR_RETURN(vm::VolumeBinding binding, vm::ParseVolumeBinding(v));
    out.volumes.push_back(std::move(binding));
  }
  if (req.has_health_check()) {
    SM_ASSIGN_OR_RETURN(out.health, HealthCheckFromProto(req.health_check()));
  }
  out.deadline = rpc_deadline;
  if (req.deadline_ms() != 0) {
    out.deadline = std::min(out.deadline, absl::Now() + absl::Milliseconds(req.deadline_ms()));
  }
  return out;
}

absl::StatusOr<vm::HealthCheck> HealthCheckFromProto(const v1::HealthCheck& check) {
  vm::HealthCheck out;
  out.argv.assign(check.cmd().begin(), check.cmd().end());
  if (out.argv.empty()) {
    return absl::InvalidArgumentError(
        "health_check.cmd is empty: give the command to run (smctl run --health-cmd CMD)");
  }
  if (check.interval_ms() != 0) {
    out.interval = absl::Milliseconds(check.interval_ms());
  }
  if (check.timeout_ms() != 0) {
    out.timeout = absl::Milliseconds(check.timeout_ms());
  }
  if (check.retries() != 0) {
    out.retries = check.retries();
  }
  out.start_period = absl::Milliseconds(check.start_period_ms());
  SM_RETURN_IF_ERROR(vm::ValidateHealthCheck(out));
  return out;
}

namespace {

v1::HealthStatus HealthToProto(vm::HealthState state) {
  switch (state) {
    case vm::HealthState::kNone:
      return v1::HEALTH_STATUS_UNSPECIFIED;
    case vm::HealthState::kStarting:
      return v1::HEALTH_STATUS_STARTING;
    case vm::HealthState::kHealthy:
      return v1::HEALTH_STATUS_HEALTHY;
    case vm::HealthState::kUnhealthy:
      return v1::HEALTH_STATUS_UNHEALTHY;
  }
  return v1::HEALTH_STATUS_UNSPECIFIED;
}

}  // namespace

void VmRowSupervisionToProto(const store::VmRecord& row, v1::VM* out) {
  absl::StatusOr<vm::RestartPolicy> policy = vm::ParseRestartPolicy(row.restart_policy);
  out->set_restart_policy(policy.ok() ? vm::ToString(*policy) : row.restart_policy);
  out->set_restart_count(static_cast<uint32_t>(row.restart_count));
  if (row.last_exit_cause) {
    v1::LastExit* e = out->mutable_last_exit();
    e->set_cause(*row.last_exit_cause);
    e->set_exit_code(static_cast<int32_t>(row.last_exit_code.value_or(0)));
    e->set_signal(static_cast<int32_t>(row.last_exit_signal.value_or(0)));
    e->set_unix_ms(row.last_exit_ms.value_or(0));
  }
}

void VmViewToProto(const vm::VmView& view, v1::VM* out) {
  out->set_restart_policy(vm::ToString(view.restart));
  out->set_restart_count(view.restarts);
  out->clear_last_exit();
  if (view.last_exit) {
    v1::LastExit* e = out->mutable_last_exit();
    e->set_cause(view.last_exit->cause);
    e->set_exit_code(static_cast<int32_t>(view.last_exit->exit_code.value_or(0)));
    e->set_signal(static_cast<int32_t>(view.last_exit->signal.value_or(0)));
    e->set_unix_ms(absl::ToUnixMillis(view.last_exit->at));
  }
  out->set_health(HealthToProto(view.health));
  out->set_restarting(view.restarting);
  out->set_id(view.id);
  out->set_name(view.name);
  out->set_snapshot(view.snapshot);
  out->set_state(v1::VM_STATE_RUNNING);
  out->set_vsock_socket(view.vm->vsock_socket());
  out->set_worker_pid(view.vm->pid());
  if (out->created_unix_ms() == 0) {
    out->set_created_unix_ms(absl::ToUnixMillis(view.acquired));
  }
  out->clear_volumes();
  for (const vm::VolumeBinding& v : view.volumes) {
    out->add_volumes(vm::ToString(v));
  }
  out->clear_ports();
  for (const vm::PortSpec& p : view.ports) {
    v1::PortForward* pf = out->add_ports();
    pf->set_host_address(p.host_address);
    pf->set_host_port(p.host_port);
    pf->set_guest_port(p.guest_port);
  }
}

absl::StatusOr<vm::VmView> SupermachineService::FindVm(const std::string& id) const {
  SM_RETURN_IF_ERROR(RequireVmId(id));
  return options_.vms->Get(id);
}

absl::Status SupermachineService::DoAcquire(grpc::ServerContext* ctx,
                                            const v1::AcquireRequest& req,
                                            v1::AcquireResponse* resp) {
  SM_ASSIGN_OR_RETURN(vm::AcquireOptions options,
                      AcquireOptionsFromProto(req, ContextDeadline(ctx)));
  SM_ASSIGN_OR_RETURN(vm::VmView view, options_.vms->Acquire(options));
  v1::VM* out = resp->mutable_vm();
  VmViewToProto(view, out);
  for (const auto& [k, v] : req.labels()) {
    (*out->mutable_labels())[k] = v;
  }
  resp->set_pool_hit(view.pool_hit);
  return absl::OkStatus();
}

void VmNetStatsToProto(const metrics::VmNetStats& s, v1::VMNetwork* out) {
  out->set_enabled(s.enabled);
  out->set_mac(s.mac);
  out->set_egress_policy(s.egress_policy);
  out->set_rx_bytes(s.rx_bytes);
  out->set_rx_packets(s.rx_packets);
  out->set_tx_bytes(s.tx_bytes);
  out->set_tx_packets(s.tx_packets);
  out->set_dropped_policy(s.dropped_policy);
  out->set_dropped_malformed(s.dropped_malformed);
  out->set_dropped_rx(s.dropped_rx);
  out->set_reset_stale(s.reset_stale);
}

absl::Status SupermachineService::DoInspectVM(grpc::ServerContext* ctx,
                                              const v1::InspectVMRequest& req,
                                              v1::InspectVMResponse* resp) {
  SM_ASSIGN_OR_RETURN(vm::VmView view, FindVm(req.vm_id()));
  VmViewToProto(view, resp->mutable_vm());
  // Labels are given at Acquire; the manager keeps them with the VM (and across restarts).
  nlohmann::json labels = nlohmann::json::parse(view.labels_json, nullptr, false);
  if (labels.is_object()) {
    for (const auto& [k, v] : labels.items()) {
      if (v.is_string()) {
        (*resp->mutable_vm()->mutable_labels())[k] = v.get<std::string>();
      }
    }
  }
  v1::VMNetwork* net = resp->mutable_network();
  // The worker is asked now: its counters are the truth, the daemon keeps no copy. A worker
  // that cannot answer does not fail the call (the VM itself was found); the reason goes along.
  absl::StatusOr<metrics::VmNetStats> stats = metrics::ReadVmNetStats(
      view.vm->control_socket(), std::min(ContextDeadline(ctx), absl::Now() + kStatsTimeout));
  if (stats.ok()) {
    VmNetStatsToProto(*stats, net);
  } else {
    resp->set_network_error(std::string(stats.status().message()));
  }
  net->set_egress_policy_override(view.egress_policy);
  return absl::OkStatus();
}

grpc::Status SupermachineService::InspectVM(grpc::ServerContext* ctx,
                                            const v1::InspectVMRequest* req,
                                            v1::InspectVMResponse* resp) {
  if (options_.vms == nullptr) {
    return Finish("InspectVM", absl::UnimplementedError(
                                   "InspectVM needs the VM manager, which this daemon runs without"));
  }
  return Finish("InspectVM", DoInspectVM(ctx, *req, resp));
}

absl::Status SupermachineService::DoRelease(const v1::ReleaseRequest& req) {
  SM_RETURN_IF_ERROR(RequireVmId(req.vm_id()));
  return options_.vms->Release(req.vm_id());
}

absl::Status SupermachineService::DoWriteFile(grpc::ServerContext* ctx,
                                              const v1::WriteFileRequest& req) {
  SM_RETURN_IF_ERROR(RequireGuestPath(req.path()));
  SM_ASSIGN_OR_RETURN(vm::VmView view, FindVm(req.vm_id()));
  agent::WriteFileOptions options{.make_parents = req.create_parents()};
  if (req.mode() != 0) {
    options.mode = req.mode() & 07777;
  }
  return view.vm->agent()
      ->WriteFile(req.path(), req.content(), options, FileOpDeadline(ctx))
      .status();
}

absl::Status SupermachineService::DoReadFile(grpc::ServerContext* ctx,
                                             const v1::ReadFileRequest& req,
                                             v1::ReadFileResponse* resp) {
  SM_RETURN_IF_ERROR(RequireGuestPath(req.path()));
  SM_ASSIGN_OR_RETURN(vm::VmView view, FindVm(req.vm_id()));
  std::string* content = resp->mutable_content();
  SM_ASSIGN_OR_RETURN(
      agent::FileInfo info,
      view.vm->agent()->ReadFileTo(
          req.path(), kMaxReadFileBytes,
          [content](std::string_view chunk) {
            content->append(chunk);
            return absl::OkStatus();
          },
          FileOpDeadline(ctx)));
  resp->set_mode(info.mode & 07777);
  return absl::OkStatus();
}

std::optional<vm::VmView> SupermachineService::AwaitSuccessor(std::string id,
                                                             grpc::ServerContext* ctx) const {
  while (!ctx->IsCancelled()) {
    absl::StatusOr<std::string> next = options_.vms->Successor(id);
    if (absl::IsUnavailable(next.status())) {
      absl::SleepFor(kLogPoll);  // a restart is under way
      continue;
    }
    if (!next.ok() || next->empty()) {
      return std::nullopt;
    }
    absl::StatusOr<vm::VmView> view = options_.vms->Get(*next);
    if (view.ok()) {
      return *std::move(view);
    }
    id = *next;  // It ended already too; it may have been restarted in turn.
  }
  return std::nullopt;
}

absl::Status SupermachineService::DoLogs(grpc::ServerContext* ctx, const v1::LogsRequest& req,
                                         grpc::ServerWriter<v1::LogChunk>* writer) {
  SM_ASSIGN_OR_RETURN(vm::VmView view, FindVm(req.vm_id()));
  // console.log.1 then console.log, following the worker's rotations (console_log_reader.h).
  auto reader = std::make_unique<vm::ConsoleLogReader>(view.vm->console_log());
  std::string buf(kLogChunk, '\0');
  bool final_pass = false;
  while (!ctx->IsCancelled()) {
    SM_ASSIGN_OR_RETURN(size_t n, reader->Read(absl::MakeSpan(buf)));
    if (n > 0) {
      v1::LogChunk chunk;
      chunk.set_data(buf.data(), n);
      if (!writer->Write(chunk)) {
        return absl::OkStatus();  // the client went away
      }
      continue;
    }
    // At the end of what was written so far. Once the VM has ended, one more pass picks up
    // what its worker wrote last.
    if (!req.follow()) {
      return absl::OkStatus();
    }
    if (final_pass) {
      // A supervised VM's restart is a new VM under a new id: its console carries on the
      // stream (docs/supervision.md). Without one, the stream ends with the VM.
      std::optional<vm::VmView> next = AwaitSuccessor(view.id, ctx);
      if (!next.has_value()) {
        return ctx->IsCancelled() ? absl::CancelledError("logs cancelled by the client")
                                  : absl::OkStatus();
      }
      view = std::move(*next);
      // Opened on the next read, once the new worker has created its console.
      reader = std::make_unique<vm::ConsoleLogReader>(view.vm->console_log());
      final_pass = false;
      continue;
    }
    final_pass = !options_.vms->Get(view.id).ok();
    if (!final_pass) {
      absl::SleepFor(kLogPoll);
    }
  }
  return absl::CancelledError("logs cancelled by the client");
}

}  // namespace supermachine::api
