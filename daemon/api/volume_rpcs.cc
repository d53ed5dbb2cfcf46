// File: volume_rpcs.cc
// ListVolumes and RemoveVolume: the named volumes (daemon/vm/named_volumes.h) as the API shows
// them. Binding volumes to a VM is part of Acquire (vm_rpcs.cc).
#include "daemon/api/service.h"
#include "daemon/vm/named_volumes.h"
#include "worker/base/status_macros.h"

namespace supermachine::api {
namespace {

constexpr char kNoVolumes[] =
    "named volumes are not available in this supermachined (they need the VM pool, "
    "daemon/vm)";

}  // namespace

grpc::Status SupermachineService::ListVolumes(grpc::ServerContext*,
                                              const v1::ListVolumesRequest*,
                                              v1::ListVolumesResponse* resp) {
  if (options_.volumes == nullptr) {
    return Finish("ListVolumes", absl::UnimplementedError(kNoVolumes));
  }
  absl::StatusOr<std::vector<store::VolumeRecord>> all = options_.volumes->List();
  if (all.ok()) {
    for (const store::VolumeRecord& v : *all) {
      v1::Volume* out = resp->add_volumes();
      out->set_name(v.name);
      out->set_path(v.path);
      out->set_size_bytes(static_cast<uint64_t>(v.size_bytes));
      out->set_created_unix_ms(v.created_ms);
      out->set_attached_vm(v.attached_vm);
      out->set_guest_path(v.guest_path);
    }
  }
  return Finish("ListVolumes", all.status());
}

grpc::Status SupermachineService::RemoveVolume(grpc::ServerContext*,
                                               const v1::RemoveVolumeRequest* req,
                                               v1::RemoveVolumeResponse*) {
  if (options_.volumes == nullptr) {
    return Finish("RemoveVolume", absl::UnimplementedError(kNoVolumes));
  }
  return Finish("RemoveVolume", options_.volumes->Remove(req->name()));
}

}  // namespace supermachine::api
