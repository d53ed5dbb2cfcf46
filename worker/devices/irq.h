// File: irq.h
// IrqLine: how a device interrupts the guest. The VM gives each device one: an eventfd bound to
// a GSI with KVM_IRQFD (no ioctl on the hot path), or a KVM_IRQ_LINE pulse when irqfd is not
// available; tests give a counter.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace supermachine::devices {

class IrqLine {
 public:
  virtual ~IrqLine() = default;
  // Raises an edge on the device's interrupt pin.
  virtual absl::Status Trigger() = 0;
  virtual uint32_t gsi() const = 0;
};

}  // namespace supermachine::devices
