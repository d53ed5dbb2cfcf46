// File: service.h
// SupermachineService: the gRPC face of the daemon. An adapter only: it validates requests,
// calls the domain (the store today; bake and pool later), converts records to API messages
// and maps every result through ToGrpcStatus. RPCs whose domain is not in this build answer
// UNIMPLEMENTED naming what is missing, rather than pretending.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/api/kvm_probe.h"
#include "daemon/bake/baker.h"
#include "daemon/store/store.h"
#include "daemon/vm/vm_manager.h"
#include "proto/supermachine.grpc.pb.h"

namespace supermachine::api {

// Called once per finished RPC (for metrics); must be thread-safe.
using RpcObserver = std::function<void(const std::string& method, grpc::StatusCode code)>;

struct ServiceOptions {
  store::Store* store = nullptr;  // not owned; outlives the service
  // Snapshot directories the daemon may delete on RemoveSnapshot. A record whose path lies
  // elsewhere only loses its row: the daemon never deletes outside its own tree.
  std::string snapshots_dir;
  std::string daemon_version;
  KvmProbePaths kvm_paths;
  RpcObserver on_rpc_done;  // optional
  // The VMs (Acquire, Release, Exec, files, Logs); null: those RPCs answer UNIMPLEMENTED.
  vm::VmManager* vms = nullptr;
  // The bake pipeline; null: Bake answers UNIMPLEMENTED saying what to configure.
  bake::Baker* baker = nullptr;
  // Serialises store calls; shared with the VM journal (vm/store_journal.h). Null: the
  // service's own.
  absl::Mutex* store_mu = nullptr;
  // Named volumes (ListVolumes, RemoveVolume); null: those RPCs answer UNIMPLEMENTED.
  vm::NamedVolumes* volumes = nullptr;
};

class SupermachineService final : public v1::Supermachine::Service {
 public:
  explicit SupermachineService(ServiceOptions options)
      : options_(std::move(options)),
        store_mu_(options_.store_mu != nullptr ? *options_.store_mu : own_store_mu_) {}

  // Number of snapshots in the store (for the snapshots gauge); serialised with the RPCs.
  absl::StatusOr<int64_t> CountSnapshots();

  grpc::Status Bake(grpc::ServerContext* ctx, const v1::BakeRequest* req,
                    grpc::ServerWriter<v1::BakeProgress>* writer) override;
  grpc::Status ListSnapshots(grpc::ServerContext* ctx, const v1::ListSnapshotsRequest* req,
                             v1::ListSnapshotsResponse* resp) override;
  grpc::Status InspectSnapshot(grpc::ServerContext* ctx, const v1::InspectSnapshotRequest* req,
                               v1::Snapshot* resp) override;
  grpc::Status RemoveSnapshot(grpc::ServerContext* ctx, const v1::RemoveSnapshotRequest* req,
                              v1::RemoveSnapshotResponse* resp) override;
  grpc::Status Gc(grpc::ServerContext* ctx, const v1::GcRequest* req,
                  v1::GcResponse* resp) override;  // bake_rpc.cc
  grpc::Status Acquire(grpc::ServerContext* ctx, const v1::AcquireRequest* req,
                       v1::AcquireResponse* resp) override;
  grpc::Status Release(grpc::ServerContext* ctx, const v1::ReleaseRequest* req,
                       v1::ReleaseResponse* resp) override;
  grpc::Status ListVMs(grpc::ServerContext* ctx, const v1::ListVMsRequest* req,
                       v1::ListVMsResponse* resp) override;
  grpc::Status InspectVM(grpc::ServerContext* ctx, const v1::InspectVMRequest* req,
                         v1::InspectVMResponse* resp) override;  // vm_rpcs.cc
  grpc::Status Exec(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<v1::ExecResponse, v1::ExecRequest>* stream) override;
  grpc::Status WriteFile(grpc::ServerContext* ctx, const v1::WriteFileRequest* req,
                         v1::WriteFileResponse* resp) override;
  grpc::Status ReadFile(grpc::ServerContext* ctx, const v1::ReadFileRequest* req,
                        v1::ReadFileResponse* resp) override;
  grpc::Status Logs(grpc::ServerContext* ctx, const v1::LogsRequest* req,
                    grpc::ServerWriter<v1::LogChunk>* writer) override;
  grpc::Status Health(grpc::ServerContext* ctx, const v1::HealthRequest* req,
                      v1::HealthResponse* resp) override;
  grpc::Status Version(grpc::ServerContext* ctx, const v1::VersionRequest* req,
                       v1::VersionResponse* resp) override;
  grpc::Status ListVolumes(grpc::ServerContext* ctx, const v1::ListVolumesRequest* req,
                           v1::ListVolumesResponse* resp) override;  // volume_rpcs.cc
  grpc::Status RemoveVolume(grpc::ServerContext* ctx, const v1::RemoveVolumeRequest* req,
                            v1::RemoveVolumeResponse* resp) override;  // volume_rpcs.cc

 private:
  // Maps and records the result of `method`: the single exit of every handler.
  grpc::Status Finish(const char* method, const absl::Status& status);

  absl::Status DoListSnapshots(v1::ListSnapshotsResponse* resp);
  absl::Status DoInspectSnapshot(const v1::InspectSnapshotRequest& req, v1::Snapshot* resp);
  absl::Status DoRemoveSnapshot(const v1::RemoveSnapshotRequest& req);
  absl::Status DoListVMs(const v1::ListVMsRequest& req, v1::ListVMsResponse* resp);
  absl::Status DoHealth(v1::HealthResponse* resp);
  absl::Status DoBake(grpc::ServerContext* ctx, const v1::BakeRequest& req,
                      grpc::ServerWriter<v1::BakeProgress>* writer);  // bake_rpc.cc
  // VM RPCs (vm_rpcs.cc, exec_bridge.cc).
  absl::Status DoAcquire(grpc::ServerContext* ctx, const v1::AcquireRequest& req,
                         v1::AcquireResponse* resp);
  absl::Status DoRelease(const v1::ReleaseRequest& req);
  absl::Status DoInspectVM(grpc::ServerContext* ctx, const v1::InspectVMRequest& req,
                           v1::InspectVMResponse* resp);
  absl::Status DoExec(grpc::ServerContext* ctx,
                      grpc::ServerReaderWriter<v1::ExecResponse, v1::ExecRequest>* stream);
  absl::Status DoWriteFile(grpc::ServerContext* ctx, const v1::WriteFileRequest& req);
  absl::Status DoReadFile(grpc::ServerContext* ctx, const v1::ReadFileRequest& req,
                          v1::ReadFileResponse* resp);
  absl::Status DoLogs(grpc::ServerContext* ctx, const v1::LogsRequest& req,
                      grpc::ServerWriter<v1::LogChunk>* writer);
  // The handed-out VM (NotFound saying why not), or Unimplemented without a VM manager.
  absl::StatusOr<vm::VmView> FindVm(const std::string& id) const;
  // For Logs with follow, once VM `id` has ended: the running VM that replaced it through
  // supervised restarts (waiting while one is under way); nullopt when none will, or the client
  // went away.
  std::optional<vm::VmView> AwaitSuccessor(std::string id, grpc::ServerContext* ctx) const;

  ServiceOptions options_;
  // The store wraps one SQLite connection, which is not shared across threads; gRPC runs
  // handlers on a thread pool, so every store call holds this.
  absl::Mutex own_store_mu_;
  absl::Mutex& store_mu_;
};

}  // namespace supermachine::api
