// File: bake_rpc.cc
// The Bake RPC: convert, run the Baker with progress streamed to the client, answer with the
// snapshot as recorded in the store.
#include "daemon/api/bake_rpc.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "daemon/api/convert.h"
#include "daemon/api/service.h"
#include "daemon/bake/gc.h"
#include "daemon/bake/request_text.h"
#include "worker/base/status_macros.h"

namespace supermachine::api {
namespace {

std::string ArgvJson(const google::protobuf::RepeatedPtrField<std::string>& argv) {
  if (argv.empty()) {
    return "";
  }
  return nlohmann::json(std::vector<std::string>(argv.begin(), argv.end())).dump();
}

}  // namespace

absl::StatusOr<bake::BakeRequest> BakeRequestFromProto(const v1::BakeRequest& req) {
  if (req.image().empty()) {
    return absl::InvalidArgumentError("image is required (a registry ref, oci-layout:DIR, ...)");
  }
  bake::BakeRequestText text;
  text.image = req.image();
  text.name = req.name();
  text.guest_port = req.guest_port();
  text.memory_mib = req.memory_mib();
  text.vcpus = req.vcpus();
  switch (req.pull_policy()) {
    case v1::PULL_POLICY_ALWAYS:
      text.pull_policy = "always";
      break;
    case v1::PULL_POLICY_NEVER:
      text.pull_policy = "never";
      break;
    default:
      text.pull_policy = "";  // missing
  }
  text.cmd_json = ArgvJson(req.cmd());
  text.entrypoint_json = ArgvJson(req.entrypoint());
  if (!req.workdir().empty()) {
    text.workdir = req.workdir();
  }
  if (!req.user().empty()) {
    text.user = req.user();
  }
  text.env.assign(req.env().begin(), req.env().end());
  text.hostname = req.hostname();
  text.extra_files.assign(req.extra_files().begin(), req.extra_files().end());
  text.volumes.assign(req.volumes().begin(), req.volumes().end());
  text.restart = req.restart_policy();
  text.readiness = req.readiness();
  text.egress = req.egress_policy();
  SM_ASSIGN_OR_RETURN(bake::BakeRequest out, bake::ParseBakeRequest(text));
  SM_RETURN_IF_ERROR(bake::Validate(out, bake::RealFsChecks()));
  return out;
}

v1::BakeProgress BakeProgressToProto(const bake::BakeProgress& p) {
  v1::BakeProgress out;
  if (p.stage == bake::BakeProgress::Stage::kPull) {
    v1::LayerPull* pull = out.mutable_pull();
    pull->set_digest(p.layer_digest);
    pull->set_bytes_done(p.bytes_done);
    pull->set_bytes_total(p.bytes_total);
  } else {
    out.set_step(bake::StageName(p.stage));
  }
  return out;
}

absl::Status SupermachineService::DoBake(grpc::ServerContext* ctx, const v1::BakeRequest& req,
                                         grpc::ServerWriter<v1::BakeProgress>* writer) {
  SM_ASSIGN_OR_RETURN(bake::BakeRequest request, BakeRequestFromProto(req));
  absl::Time deadline = absl::InfiniteFuture();
  if (ctx->deadline() != std::chrono::system_clock::time_point::max()) {
    deadline = absl::FromChrono(ctx->deadline());
  }
  SM_ASSIGN_OR_RETURN(
      bake::BakeResult result,
      options_.baker->Bake(
          request,
          [writer](const bake::BakeProgress& p) {
            // A client that went away does not stop the bake: its snapshot is still useful.
            (void)writer->Write(BakeProgressToProto(p));
          },
          deadline));
  store::SnapshotRecord snap;
  {
    absl::MutexLock lock(&store_mu_);
    SM_ASSIGN_OR_RETURN(snap, options_.store->GetSnapshot(result.snapshot_name));
  }
  v1::BakeProgress last;
  SM_RETURN_IF_ERROR(SnapshotToProto(snap, last.mutable_result()));
  last.mutable_result()->set_cache_hit(result.cache_hit);
  writer->Write(last);
  return absl::OkStatus();
}

grpc::Status SupermachineService::Gc(grpc::ServerContext*, const v1::GcRequest* req,
                                     v1::GcResponse* resp) {
  if (options_.baker == nullptr) {
    return Finish("Gc", absl::UnimplementedError(
                            "Gc is not available in this supermachined: the bake pipeline is not "
                            "configured (it needs the kernel, guest agent and worker paths)"));
  }
  absl::StatusOr<bake::GcReport> report = options_.baker->Gc(req->dry_run());
  if (report.ok()) {
    GcReportToProto(*report, resp);
  }
  return Finish("Gc", report.status());
}

void GcReportToProto(const bake::GcReport& report, v1::GcResponse* resp) {
  resp->set_dry_run(report.dry_run);
  resp->set_bytes_freed(report.bytes_freed);
  for (const bake::GcItem& item : report.items) {
    v1::GcItem* out = resp->add_removed();
    out->set_kind(item.kind);
    out->set_path(item.path);
    out->set_bytes(item.bytes);
    out->set_digest(item.digest);
  }
  for (const std::string& e : report.errors) {
    resp->add_errors(e);
  }
}

}  // namespace supermachine::api
