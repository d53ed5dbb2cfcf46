// File: mmio.cc
// virtio-mmio v2 register semantics.
#include "worker/devices/virtio/mmio.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace supermachine::devices::virtio {

MmioTransport::MmioTransport(std::unique_ptr<VirtioDevice> device,
                             const memory::GuestMemory* mem, IrqLine* irq)
    : device_(std::move(device)), mem_(mem), irq_(irq) {
  for (uint16_t max : device_->queue_max_sizes()) {
    QueueState q;
    q.max_size = max;
    q.size = max;
    queues_.emplace_back(q);
  }
}

void MmioTransport::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::lock_guard lock(mu_);
  if (offset >= reg::kConfig) {
    device_->ReadConfig(offset - reg::kConfig, data);
    return;
  }
  // Registers below 0x100 are 32-bit only (§4.2.2.2); other widths read as 0.
  uint32_t value = 0;
  if (data.size() == 4 && offset % 4 == 0) {
    value = ReadRegister(offset);
  }
  std::memset(data.data(), 0, data.size());
  std::memcpy(data.data(), &value, std::min<size_t>(data.size(), 4));
}

void MmioTransport::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  if (offset >= reg::kConfig) {
    device_->WriteConfig(offset - reg::kConfig, data);
    state_.config_generation++;
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) {
    return;
  }
  uint32_t value;
  std::memcpy(&value, data.data(), 4);
  WriteRegister(offset, value);
}

void MmioTransport::Notify(uint32_t queue_index) {
  std::lock_guard lock(mu_);
  NotifyLocked(queue_index);
}

Queue* MmioTransport::SelectedQueue() {
  return state_.queue_sel < queues_.size() ? &queues_[state_.queue_sel] : nullptr;
}

bool MmioTransport::QueueConfigWritable() const {
  // Queue layout may change only between FEATURES_OK and DRIVER_OK, while the queue is off.
  return (state_.device_status & status::kFeaturesOk) &&
         !(state_.device_status & status::kDriverOk) && !(state_.device_status & status::kFailed);
}

uint32_t MmioTransport::ReadRegister(uint64_t offset) {
  Queue* q = SelectedQueue();
  switch (offset) {
    case reg::kMagic:
      return kMmioMagic;
    case reg::kVersion:
      return 2;
    case reg::kDeviceId:
      return device_->device_type();
    case reg::kVendorId:
      return kVendorId;
    case reg::kDeviceFeatures:
      if (state_.device_features_sel == 0) {
        return static_cast<uint32_t>(device_->features());
      }
      if (state_.device_features_sel == 1) {
        return static_cast<uint32_t>(device_->features() >> 32);
      }
      return 0;
    case reg::kQueueNumMax:
      return q ? q->state().max_size : 0;
    case reg::kQueueReady:
      return q && q->state().ready ? 1 : 0;
    case reg::kInterruptStatus:
      return state_.interrupt_status;
    case reg::kStatus:
      return state_.device_status;
    case reg::kConfigGeneration:
      return state_.config_generation;
    default:
      return 0;  // Write-only or unknown registers read as 0.
  }
}

void MmioTransport::WriteRegister(uint64_t offset, uint32_t value) {
  Queue* q = SelectedQueue();
  auto set_low = [](uint64_t* field, uint32_t v) { *field = (*field & ~0xffffffffull) | v; };
  auto set_high = [](uint64_t* field, uint32_t v) {
    *field = (*field & 0xffffffffull) | (static_cast<uint64_t>(v) << 32);
  };
  switch (offset) {
    case reg::kDeviceFeaturesSel:
      state_.device_features_sel = value;
      return;
    case reg::kDriverFeatures:
      // Features are negotiable only after DRIVER and before FEATURES_OK (§3.1.1).
      if ((state_.device_status & status::kDriver) &&
          !(state_.device_status & status::kFeaturesOk)) {
        if (state_.driver_features_sel == 0) {
          set_low(&state_.acked_features, value);
        } else if (state_.driver_features_sel == 1) {
          set_high(&state_.acked_features, value);
        }
      }
      return;
    case reg::kDriverFeaturesSel:
      state_.driver_features_sel = value;
      return;
    case reg::kQueueSel:
      state_.queue_sel = value;
      return;
    case reg::kQueueNum:
      if (q && QueueConfigWritable() && !q->state().ready) {
        q->state().size = static_cast<uint16_t>(std::min<uint32_t>(value, 0xffff));
      }
      return;
    case reg::kQueueReady:
      if (q && QueueConfigWritable()) {
        if (value == 1) {
          absl::Status st = q->Validate(*mem_);
          if (!st.ok()) {
            // Refuse to enable a queue whose rings we cannot use; the driver sees
            // QueueReady stay 0 and the device asks for a reset.
            last_error_ = absl::StrCat(device_->name(), " queue ", state_.queue_sel, ": ",
                                       st.message());
            state_.device_status |= status::kNeedsReset;
            return;
          }
          q->state().ready = true;
        } else {
          q->state().ready = false;
        }
      }
      return;
    case reg::kQueueNotify:
      NotifyLocked(value);
      return;
    case reg::kInterruptAck:
      state_.interrupt_status &= ~value;
      return;
    case reg::kStatus:
      SetStatus(value);
      return;
    case reg::kQueueDescLow:
    case reg::kQueueDescHigh:
    case reg::kQueueDriverLow:
    case reg::kQueueDriverHigh:
    case reg::kQueueDeviceLow:
    case reg::kQueueDeviceHigh:
      if (q && QueueConfigWritable() && !q->state().ready) {
        QueueState& s = q->state();
        switch (offset) {
          case reg::kQueueDescLow: set_low(&s.desc_table, value); break;
          case reg::kQueueDescHigh: set_high(&s.desc_table, value); break;
          case reg::kQueueDriverLow: set_low(&s.avail_ring, value); break;
          case reg::kQueueDriverHigh: set_high(&s.avail_ring, value); break;
          case reg::kQueueDeviceLow: set_low(&s.used_ring, value); break;
          case reg::kQueueDeviceHigh: set_high(&s.used_ring, value); break;
          default: break;
        }
      }
      return;
    default:
      return;
  }
}

void MmioTransport::SetStatus(uint32_t value) {
  if (value == 0) {
    ResetLocked();
    return;
  }
  const uint32_t old = state_.device_status;
  // The driver only ever adds bits (§2.1.2); anything else is ignored.
  if ((value & old) != old) {
    return;
  }
  const uint32_t added = value & ~old;
  if (added & status::kFeaturesOk) {
    // Accept only a subset of what we offered, and only the modern interface.
    const uint64_t offered = device_->features();
    if ((state_.acked_features & ~offered) != 0 ||
        (state_.acked_features & kFeatureVersion1) == 0) {
      value &= ~status::kFeaturesOk;  // The driver reads it back and gives up.
    }
  }
  if (added & status::kDriverOk) {
    if (!(value & status::kFeaturesOk)) {
      return;
    }
    device_->Activate(state_.acked_features);
  }
  state_.device_status = value;
}

void MmioTransport::ResetLocked() {
  for (Queue& q : queues_) {
    QueueState s;
    s.max_size = q.state().max_size;
    s.size = s.max_size;
    q = Queue(s);
  }
  const uint32_t generation = state_.config_generation;
  state_ = MmioState();
  state_.config_generation = generation;
  device_->Reset();
}

void MmioTransport::NotifyLocked(uint32_t queue_index) {
  if (queue_index >= queues_.size() || !(state_.device_status & status::kDriverOk) ||
      !queues_[queue_index].state().ready) {
    return;
  }
  absl::StatusOr<bool> used =
      device_->ProcessQueues(queue_index, absl::MakeSpan(queues_), *mem_);
  CompleteLocked(used, absl::StrCat("queue ", queue_index));
}

void MmioTransport::CompleteLocked(const absl::StatusOr<bool>& used, const std::string& what) {
  if (!used.ok()) {
    last_error_ = absl::StrCat(device_->name(), " ", what, ": ", used.status().message());
    return;
  }
  if (*used) {
    state_.interrupt_status |= kInterruptUsedBuffer;
    irq_->Trigger().IgnoreError();  // Fails only while the VM is being torn down.
  }
}

int MmioTransport::host_event_fd() {
  std::lock_guard lock(mu_);
  return device_->host_event_fd();
}

void MmioTransport::ProcessHostEvents() {
  std::lock_guard lock(mu_);
  CompleteLocked(device_->ProcessHostEvents(absl::MakeSpan(queues_), *mem_), "host events");
}

absl::Status MmioTransport::WithDevice(const DeviceFn& fn) {
  std::lock_guard lock(mu_);
  absl::StatusOr<bool> used = fn(*device_, absl::MakeSpan(queues_), *mem_);
  CompleteLocked(used, "device operation");
  return used.status();
}

absl::Status MmioTransport::ChangeConfig(const ConfigFn& fn) {
  std::lock_guard lock(mu_);
  absl::Status st = fn(*device_, *mem_);
  if (!st.ok()) {
    return st;
  }
  state_.config_generation++;
  if ((state_.device_status & status::kDriverOk) != 0) {
    state_.interrupt_status |= kInterruptConfigChange;
    irq_->Trigger().IgnoreError();  // Fails only while the VM is being torn down.
  }
  return absl::OkStatus();
}

MmioState MmioTransport::SaveState() {
  std::lock_guard lock(mu_);
  MmioState s = state_;
  s.queues.clear();
  for (const Queue& q : queues_) {
    s.queues.push_back(q.state());
  }
  return s;
}

absl::Status MmioTransport::RestoreState(const MmioState& state) {
  std::lock_guard lock(mu_);
  const std::string who = device_->name();
  if (state.queues.size() != queues_.size()) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": ", state.queues.size(),
                                                   " queues saved, the device has ",
                                                   queues_.size()));
  }
  const uint32_t st = state.device_status;
  const uint32_t known = status::kAcknowledge | status::kDriver | status::kDriverOk |
                         status::kFeaturesOk | status::kNeedsReset | status::kFailed;
  if ((st & ~known) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": unknown status bits in 0x",
                                                   absl::Hex(st)));
  }
  if ((st & status::kFeaturesOk) != 0) {
    if ((state.acked_features & ~device_->features()) != 0 ||
        (state.acked_features & kFeatureVersion1) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          who, ": acked features 0x", absl::Hex(state.acked_features),
          " are not a modern subset of the offered 0x", absl::Hex(device_->features())));
    }
  }
  if ((st & status::kDriverOk) != 0 && (st & status::kFeaturesOk) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": DRIVER_OK without FEATURES_OK"));
  }
  if ((state.interrupt_status & ~(kInterruptUsedBuffer | kInterruptConfigChange)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": unknown interrupt bits 0x",
                                                   absl::Hex(state.interrupt_status)));
  }
  std::vector<Queue> queues;
  queues.reserve(queues_.size());
  for (size_t i = 0; i < queues_.size(); ++i) {
    QueueState q = state.queues[i];
    if (q.max_size != queues_[i].state().max_size) {
      return absl::InvalidArgumentError(absl::StrCat(who, " queue ", i, ": max size ",
                                                     q.max_size, " saved, the device has ",
                                                     queues_[i].state().max_size));
    }
    Queue restored(q);
    if (q.ready) {
      absl::Status valid = restored.Validate(*mem_);
      if (!valid.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(who, " queue ", i, ": ", valid.message()));
      }
    }
    queues.push_back(restored);
  }
  // All checked: commit.
  queues_ = std::move(queues);
  state_ = state;
  state_.queues.clear();
  if ((st & status::kDriverOk) != 0) {
    device_->Activate(state_.acked_features);
  }
  if (state_.interrupt_status != 0) {
    // The guest had not acknowledged it: the line must be asserted again in the new VM.
    irq_->Trigger().IgnoreError();
  }
  return absl::OkStatus();
}

std::string MmioTransport::last_error() {
  std::lock_guard lock(mu_);
  return last_error_;
}

absl::StatusOr<uint64_t> ReadFromChain(const memory::GuestMemory& mem,
                                       const DescriptorChain& chain, uint64_t skip,
                                       absl::Span<uint8_t> out) {
  uint64_t copied = 0;
  for (const Descriptor& d : chain.descriptors) {
    if (d.write_only || copied == out.size()) {
      continue;
    }
    if (skip >= d.len) {
      skip -= d.len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(d.len - skip, out.size() - copied);
    absl::Status st = mem.Read(d.addr + skip, out.subspan(copied, n));
    if (!st.ok()) {
      return st;
    }
    copied += n;
    skip = 0;
  }
  return copied;
}

}  // namespace supermachine::devices::virtio
