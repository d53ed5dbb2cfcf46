// File: device_state.cc
// Device state structs to and from their snapshot messages.
#include "worker/snapshot/device_state.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace supermachine::snapshot {
namespace {


absl::Status Corrupt(const std::string& what) {
  return absl::DataLossError(absl::StrCat(what, "; the snapshot state is corrupt or was taken "
                                                "with a different device configuration"));
}

bool FitsU8(uint32_t v) { return v <= std::numeric_limits<uint8_t>::max(); }

}  // namespace

v1::VirtioTransportState TransportToProto(const devices::virtio::MmioState& state,
                                          uint32_t device_type, uint64_t device_features) {
  v1::VirtioTransportState out;
  out.set_device_type(device_type);
  out.set_device_status(state.device_status);
  out.set_device_features_sel(state.device_features_sel);
  out.set_driver_features_sel(state.driver_features_sel);
  out.set_device_features(device_features);
  out.set_acked_features(state.acked_features);
  out.set_queue_sel(state.queue_sel);
  out.set_interrupt_status(state.interrupt_status);
  out.set_config_generation(state.config_generation);
  for (const devices::virtio::QueueState& q : state.queues) {
    v1::QueueState* pq = out.add_queues();
    pq->set_max_size(q.max_size);
    pq->set_size(q.size);
    pq->set_ready(q.ready);
    pq->set_desc_table(q.desc_table);
    pq->set_avail_ring(q.avail_ring);
    pq->set_used_ring(q.used_ring);
    pq->set_next_avail(q.next_avail);
    pq->set_next_used(q.next_used);
  }
  return out;
}

absl::StatusOr<devices::virtio::MmioState> TransportFromProto(
    const v1::VirtioTransportState& proto, uint32_t device_type, uint64_t device_features,
    size_t num_queues) {
  if (proto.device_type() != device_type) {
    return Corrupt(absl::StrCat("virtio device type ", proto.device_type(),
                                " saved where the restored device is type ", device_type));
  }
  if ((proto.acked_features() & ~device_features) != 0) {
    return Corrupt(absl::StrFormat(
        "virtio device type %d: the driver acked features 0x%x the device does not offer "
        "(0x%x)",
        device_type, proto.acked_features(), device_features));
  }
  if (static_cast<size_t>(proto.queues_size()) != num_queues) {
    return Corrupt(absl::StrCat("virtio device type ", device_type, ": ", proto.queues_size(),
                                " queues saved, the device has ", num_queues));
  }
  devices::virtio::MmioState state;
  state.device_status = proto.device_status();
  state.device_features_sel = proto.device_features_sel();
  state.driver_features_sel = proto.driver_features_sel();
  state.acked_features = proto.acked_features();
  state.queue_sel = proto.queue_sel();
  state.interrupt_status = proto.interrupt_status();
  state.config_generation = proto.config_generation();
  for (const v1::QueueState& pq : proto.queues()) {
    const uint32_t max = pq.max_size();
    const uint32_t size = pq.size();
    if (max == 0 || max > 32768 || size == 0 || size > max || (size & (size - 1)) != 0 ||
        pq.next_avail() > 0xffff || pq.next_used() > 0xffff) {
      return Corrupt(absl::StrFormat(
          "virtio device type %d: queue size %d (max %d) or ring position (%d, %d) is invalid",
          device_type, size, max, pq.next_avail(), pq.next_used()));
    }
    devices::virtio::QueueState q;
    q.max_size = static_cast<uint16_t>(max);
    q.size = static_cast<uint16_t>(size);
    q.ready = pq.ready();
    q.desc_table = pq.desc_table();
    q.avail_ring = pq.avail_ring();
    q.used_ring = pq.used_ring();
    q.next_avail = static_cast<uint16_t>(pq.next_avail());
    q.next_used = static_cast<uint16_t>(pq.next_used());
    state.queues.push_back(q);
  }
  return state;
}

v1::SerialState SerialToProto(const devices::SerialState& state) {
  v1::SerialState out;
  out.set_baud_divisor_low(state.baud_divisor_low);
  out.set_baud_divisor_high(state.baud_divisor_high);
  out.set_interrupt_enable(state.interrupt_enable);
  out.set_interrupt_identification(state.interrupt_identification);
  out.set_line_control(state.line_control);
  out.set_modem_control(state.modem_control);
  out.set_modem_status(state.modem_status);
  out.set_scratch(state.scratch);
  out.set_thr_empty_pending(state.thr_empty_pending);
  out.set_in_buffer(std::string(state.in_buffer.begin(), state.in_buffer.end()));
  return out;
}

absl::StatusOr<devices::SerialState> SerialFromProto(const v1::SerialState& proto) {
  for (uint32_t v : {proto.baud_divisor_low(), proto.baud_divisor_high(),
                     proto.interrupt_enable(), proto.interrupt_identification(),
                     proto.line_control(), proto.modem_control(), proto.modem_status(),
                     proto.scratch()}) {
    if (!FitsU8(v)) {
      return Corrupt(absl::StrCat("serial register value ", v, " does not fit in a byte"));
    }
  }
  devices::SerialState state;
  state.baud_divisor_low = static_cast<uint8_t>(proto.baud_divisor_low());
  state.baud_divisor_high = static_cast<uint8_t>(proto.baud_divisor_high());
  state.interrupt_enable = static_cast<uint8_t>(proto.interrupt_enable());
  state.interrupt_identification = static_cast<uint8_t>(proto.interrupt_identification());
  state.line_control = static_cast<uint8_t>(proto.line_control());
  state.modem_control = static_cast<uint8_t>(proto.modem_control());
  state.modem_status = static_cast<uint8_t>(proto.modem_status());
  state.scratch = static_cast<uint8_t>(proto.scratch());
  state.thr_empty_pending = proto.thr_empty_pending();
  state.in_buffer.assign(proto.in_buffer().begin(), proto.in_buffer().end());
  return state;
}

v1::BalloonDeviceState BalloonToProto(const devices::virtio::BalloonState& state) {
  v1::BalloonDeviceState out;
  out.set_num_pages(state.num_pages);
  out.set_actual(state.actual);
  return out;
}

devices::virtio::BalloonState BalloonFromProto(const v1::BalloonDeviceState& proto) {
  devices::virtio::BalloonState state;
  state.num_pages = proto.num_pages();
  state.actual = proto.actual();
  return state;
}

}  // namespace supermachine::snapshot
