// File: compat.cc
// Restore preconditions.
#include "worker/snapshot/compat.h"

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/snapshot/cpu_identity.h"

namespace supermachine::snapshot {

absl::Status CheckRestorable(const v1::SnapshotState& state, const RestoreTarget& target) {
  if (state.vcpu_count() == 0 || static_cast<uint32_t>(state.vcpus_size()) != state.vcpu_count()) {
    return absl::DataLossError(absl::StrCat("snapshot says ", state.vcpu_count(),
                                            " vCPUs but holds state for ", state.vcpus_size(),
                                            "; the state file is corrupt"));
  }
  if (target.vcpu_count.has_value() && *target.vcpu_count != state.vcpu_count()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "snapshot has ", state.vcpu_count(), " vCPUs, ", *target.vcpu_count,
        " were requested: a guest cannot change its CPU count across a restore; drop --vcpus "
        "or take a snapshot with ", *target.vcpu_count, " vCPUs"));
  }
  if (state.memory().regions_size() == 0) {
    return absl::DataLossError("snapshot has no memory regions; the state file is corrupt");
  }
  SM_RETURN_IF_ERROR(CheckGuestIdentity(state.guest(), target.guest));
  return base::Annotate(CheckCpuCompatible(state.cpu(), target.host_cpu),
                        "snapshot CPU check");
}

}  // namespace supermachine::snapshot
