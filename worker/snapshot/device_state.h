// File: device_state.h
// Conversions between the devices' plain state structs (worker/devices: MmioState, QueueState,
// SerialState) and their snapshot messages, plus the checks a restored transport state must
// pass before queues are rebuilt from it (Firecracker devices/virtio/persist.rs,
// build_queues_checked): right device type, acked features a subset of the offered ones, the
// device's queue count, queue sizes a power of two within the maximum.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "proto/snapshot.pb.h"
#include "worker/devices/legacy/serial.h"
#include "worker/devices/virtio/balloon.h"
#include "worker/devices/virtio/mmio.h"

namespace supermachine::snapshot {

::supermachine::snapshot::v1::VirtioTransportState TransportToProto(
    const devices::virtio::MmioState& state, uint32_t device_type, uint64_t device_features);

// Checked against the device re-created on restore (`device_type`, the features it offers now,
// its queue count). Errors name the field.
absl::StatusOr<devices::virtio::MmioState> TransportFromProto(
    const ::supermachine::snapshot::v1::VirtioTransportState& proto, uint32_t device_type,
    uint64_t device_features, size_t num_queues);

::supermachine::snapshot::v1::SerialState SerialToProto(const devices::SerialState& state);
absl::StatusOr<devices::SerialState> SerialFromProto(
    const ::supermachine::snapshot::v1::SerialState& proto);

// The balloon's config space (counters are per worker and not saved). Any values are accepted:
// both fields are page counts the guest reads or wrote, and a 1.0/1.1 snapshot has no balloon.
::supermachine::snapshot::v1::BalloonDeviceState BalloonToProto(
    const devices::virtio::BalloonState& state);
devices::virtio::BalloonState BalloonFromProto(
    const ::supermachine::snapshot::v1::BalloonDeviceState& proto);

}  // namespace supermachine::snapshot
