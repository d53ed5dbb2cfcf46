// File: fake_irq.h
// Test IrqLine that counts triggers.
#pragma once

#include "worker/devices/irq.h"

namespace supermachine::testing {

class CountingIrq : public devices::IrqLine {
 public:
  absl::Status Trigger() override {
    ++count;
    return absl::OkStatus();
  }
  uint32_t gsi() const override { return 5; }
  int count = 0;
};

}  // namespace supermachine::testing
