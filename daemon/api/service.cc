// File: service.cc
#include "daemon/api/service.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "daemon/api/convert.h"
#include "daemon/api/status_mapping.h"
#include "daemon/api/vm_rpcs.h"
#include "worker/base/status_macros.h"

namespace supermachine::api {
namespace {

// The public API's version: the proto package. Bumps only with a new major package.
constexpr char kApiVersion[] = "supermachine.v1";

// Longest snapshot name we accept; the store keys on it and paths are derived from it.
constexpr size_t kMaxNameLength = 255;

absl::Status ValidateSnapshotName(const std::string& name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("snapshot name is required");
  }
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot name is ", name.size(), " bytes; the limit is ", kMaxNameLength));
  }
  return absl::OkStatus();
}

// True when `path` names something strictly inside `dir` (after normalising both), so a
// corrupt or foreign record can never make RemoveSnapshot delete outside the daemon's tree.
bool IsInside(const std::string& path, const std::string& dir) {
  if (path.empty() || dir.empty()) {
    return false;
  }
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  std::filesystem::path d = std::filesystem::path(dir).lexically_normal();
  std::filesystem::path rel = p.lexically_relative(d);
  return !rel.empty() && rel != "." && *rel.begin() != "..";
}

absl::Status NotInThisBuild(const char* rpc, const char* missing) {
  return absl::UnimplementedError(absl::StrCat(
      rpc, " is not implemented by this supermachined yet: ", missing,
      " is not part of this build (see issue 9)"));
}

constexpr char kNoPool[] = "the VM pool (daemon/pool) that restores and supervises VMs";
constexpr char kNoGuestIo[] =
    "talking to a VM's guest agent needs running VMs from the pool (daemon/pool), which";

}  // namespace

grpc::Status SupermachineService::Finish(const char* method, const absl::Status& status) {
  grpc::Status out = ToGrpcStatus(status);
  if (options_.on_rpc_done) {
    options_.on_rpc_done(method, out.error_code());
  }
  return out;
}

absl::StatusOr<int64_t> SupermachineService::CountSnapshots() {
  absl::MutexLock lock(&store_mu_);
  SM_ASSIGN_OR_RETURN(std::vector<store::SnapshotRecord> snaps, options_.store->ListSnapshots());
  return static_cast<int64_t>(snaps.size());
}

// --- snapshots

grpc::Status SupermachineService::Bake(grpc::ServerContext* ctx, const v1::BakeRequest* req,
                                       grpc::ServerWriter<v1::BakeProgress>* writer) {
  if (options_.baker == nullptr) {
    return Finish("Bake", absl::UnimplementedError(
                              "Bake is not available in this supermachined: the bake pipeline "
                              "needs a guest kernel and agent; set \"kernel\" and \"guest_agent\" "
                              "in the daemon config (docs/operations.md)"));
  }
  return Finish("Bake", DoBake(ctx, *req, writer));
}

absl::Status SupermachineService::DoListSnapshots(v1::ListSnapshotsResponse* resp) {
  std::vector<store::SnapshotRecord> snaps;
  {
    absl::MutexLock lock(&store_mu_);
    SM_ASSIGN_OR_RETURN(snaps, options_.store->ListSnapshots());
  }
  for (const store::SnapshotRecord& s : snaps) {
    SM_RETURN_IF_ERROR(SnapshotToProto(s, resp->add_snapshots()));
  }
  return absl::OkStatus();
}

grpc::Status SupermachineService::ListSnapshots(grpc::ServerContext*,
                                                const v1::ListSnapshotsRequest*,
                                                v1::ListSnapshotsResponse* resp) {
  return Finish("ListSnapshots", DoListSnapshots(resp));
}

absl::Status SupermachineService::DoInspectSnapshot(const v1::InspectSnapshotRequest& req,
                                                    v1::Snapshot* resp) {
  SM_RETURN_IF_ERROR(ValidateSnapshotName(req.name()));
  store::SnapshotRecord snap;
  {
    absl::MutexLock lock(&store_mu_);
    SM_ASSIGN_OR_RETURN(snap, options_.store->GetSnapshot(req.name()));
  }
  return SnapshotToProto(snap, resp);
}

grpc::Status SupermachineService::InspectSnapshot(grpc::ServerContext*,
                                                  const v1::InspectSnapshotRequest* req,
                                                  v1::Snapshot* resp) {
  return Finish("InspectSnapshot", DoInspectSnapshot(*req, resp));
}

absl::Status SupermachineService::DoRemoveSnapshot(const v1::RemoveSnapshotRequest& req) {
  SM_RETURN_IF_ERROR(ValidateSnapshotName(req.name()));
  std::string path;
  {
    absl::MutexLock lock(&store_mu_);
    SM_ASSIGN_OR_RETURN(store::SnapshotRecord snap, options_.store->GetSnapshot(req.name()));
    path = snap.path;
    absl::Status st = options_.store->RemoveSnapshot(req.name());
    if (!st.ok()) {
      if (req.force() && absl::IsFailedPrecondition(st)) {
        // Forcing means releasing the VMs first, which is the pool's job; say so instead of
        // deleting files under running VMs.
        return absl::FailedPreconditionError(absl::StrCat(
            st.message(), " (force is not supported yet: releasing VMs needs the VM pool)"));
      }
      return st;
    }
  }
  // The row is gone first (the store is the source of truth); files left behind by a failed
  // delete are orphans a later sweep can collect, never a snapshot that looks valid.
  if (IsInside(path, options_.snapshots_dir)) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("snapshot '", req.name(), "' was removed but its files at ",
                                              path, " could not be deleted: ", ec.message()));
    }
  }
  return absl::OkStatus();
}

grpc::Status SupermachineService::RemoveSnapshot(grpc::ServerContext*,
                                                 const v1::RemoveSnapshotRequest* req,
                                                 v1::RemoveSnapshotResponse*) {
  return Finish("RemoveSnapshot", DoRemoveSnapshot(*req));
}

// --- VMs

grpc::Status SupermachineService::Acquire(grpc::ServerContext* ctx, const v1::AcquireRequest* req,
                                          v1::AcquireResponse* resp) {
  if (options_.vms == nullptr) {
    return Finish("Acquire", NotInThisBuild("Acquire", kNoPool));
  }
  return Finish("Acquire", DoAcquire(ctx, *req, resp));
}

grpc::Status SupermachineService::Release(grpc::ServerContext*, const v1::ReleaseRequest* req,
                                          v1::ReleaseResponse*) {
  if (options_.vms == nullptr) {
    return Finish("Release", NotInThisBuild("Release", kNoPool));
  }
  return Finish("Release", DoRelease(*req));
}

absl::Status SupermachineService::DoListVMs(const v1::ListVMsRequest& req,
                                            v1::ListVMsResponse* resp) {
  std::vector<store::VmRecord> vms;
  {
    absl::MutexLock lock(&store_mu_);
    SM_ASSIGN_OR_RETURN(vms, options_.store->ListVms(req.all()));
  }
  for (const store::VmRecord& v : vms) {
    v1::VM* out = resp->add_vms();
    SM_RETURN_IF_ERROR(VmToProto(v, out));
    VmRowSupervisionToProto(v, out);
    // Names and forwarded ports are given at Acquire, after the (pooled) VM was journaled:
    // the manager knows them for handed-out VMs.
    if (options_.vms != nullptr && v.state != "ended") {
      if (absl::StatusOr<vm::VmView> view = options_.vms->Get(v.id); view.ok()) {
        VmViewToProto(*view, out);
      }
    }
  }
  return absl::OkStatus();
}

grpc::Status SupermachineService::ListVMs(grpc::ServerContext*, const v1::ListVMsRequest* req,
                                          v1::ListVMsResponse* resp) {
  return Finish("ListVMs", DoListVMs(*req, resp));
}

grpc::Status SupermachineService::Exec(
    grpc::ServerContext* ctx, grpc::ServerReaderWriter<v1::ExecResponse, v1::ExecRequest>* stream) {
  if (options_.vms == nullptr) {
    return Finish("Exec", NotInThisBuild("Exec", kNoGuestIo));
  }
  return Finish("Exec", DoExec(ctx, stream));
}

grpc::Status SupermachineService::WriteFile(grpc::ServerContext* ctx,
                                            const v1::WriteFileRequest* req,
                                            v1::WriteFileResponse*) {
  if (options_.vms == nullptr) {
    return Finish("WriteFile", NotInThisBuild("WriteFile", kNoGuestIo));
  }
  return Finish("WriteFile", DoWriteFile(ctx, *req));
}

grpc::Status SupermachineService::ReadFile(grpc::ServerContext* ctx,
                                           const v1::ReadFileRequest* req,
                                           v1::ReadFileResponse* resp) {
  if (options_.vms == nullptr) {
    return Finish("ReadFile", NotInThisBuild("ReadFile", kNoGuestIo));
  }
  return Finish("ReadFile", DoReadFile(ctx, *req, resp));
}

grpc::Status SupermachineService::Logs(grpc::ServerContext* ctx, const v1::LogsRequest* req,
                                       grpc::ServerWriter<v1::LogChunk>* writer) {
  if (options_.vms == nullptr) {
    return Finish("Logs", NotInThisBuild("Logs", kNoGuestIo));
  }
  return Finish("Logs", DoLogs(ctx, *req, writer));
}

// --- daemon

absl::Status SupermachineService::DoHealth(v1::HealthResponse* resp) {
  KvmProbe kvm = ProbeKvm(options_.kvm_paths);
  resp->set_kvm(kvm.kind);
  for (std::string& p : kvm.problems) {
    resp->add_problems(std::move(p));
  }
  // The store check is a real query: a locked, corrupt or vanished database fails it. Serving
  // means the control plane can answer from its store; KVM problems are listed separately
  // because listing and removing snapshots still work without KVM.
  absl::Status store_st;
  {
    absl::MutexLock lock(&store_mu_);
    store_st = options_.store->ListVms(/*include_ended=*/false).status();
  }
  if (!store_st.ok()) {
    resp->add_problems(absl::StrCat("store is not usable: ", store_st.message(),
                                    " (check the state directory's disk space and permissions)"));
  }
  resp->set_serving(store_st.ok());
  return absl::OkStatus();
}

grpc::Status SupermachineService::Health(grpc::ServerContext*, const v1::HealthRequest*,
                                         v1::HealthResponse* resp) {
  return Finish("Health", DoHealth(resp));
}

grpc::Status SupermachineService::Version(grpc::ServerContext*, const v1::VersionRequest*,
                                          v1::VersionResponse* resp) {
  resp->set_daemon(options_.daemon_version);
  resp->set_api(kApiVersion);
  // kernel and agent stay empty: they are the versions of the guest artifacts a bake records,
  // and this build has no bake pipeline to report them.
  return Finish("Version", absl::OkStatus());
}

}  // namespace supermachine::api
