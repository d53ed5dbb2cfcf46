// File: serial.h
// An 8250/16550A UART at COM1: enough for the Linux 8250 driver to detect a 16550A, print the
// console (polled and interrupt-driven) and read input. Transmit completes instantly (THR is
// always empty); receive holds a bounded FIFO. Register semantics follow the 16550 datasheet as
// Firecracker's vm-superio serial.rs models them. State is a plain struct (SerialState) that
// SaveState/RestoreState move in and out for snapshots.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "worker/devices/irq.h"

namespace supermachine::devices {

struct SerialState {
  uint8_t baud_divisor_low = 0x0c;  // 9600 baud, as firmware leaves it.
  uint8_t baud_divisor_high = 0;
  uint8_t interrupt_enable = 0;
  uint8_t interrupt_identification = 0x01;  // No interrupt pending.
  uint8_t line_control = 0x03;              // 8N1.
  uint8_t modem_control = 0x08;             // OUT2 (interrupts routed to the PIC).
  uint8_t modem_status = 0xb0;              // DCD | DSR | CTS.
  uint8_t scratch = 0;
  bool thr_empty_pending = false;
  std::deque<uint8_t> in_buffer;
};

// Where console output goes. Write errors are counted, never fatal: a full pipe must not kill
// the VM.
class SerialOutput {
 public:
  virtual ~SerialOutput() = default;
  virtual void Write(uint8_t byte) = 0;
};

class FdSerialOutput : public SerialOutput {
 public:
  explicit FdSerialOutput(int fd) : fd_(fd) {}
  void Write(uint8_t byte) override;

 private:
  int fd_;  // Not owned.
};

class Serial {
 public:
  // The input FIFO size: a 16550A has 16 bytes; we allow a little more so pasted lines are not
  // dropped between two guest reads.
  static constexpr size_t kInputFifo = 64;

  Serial(IrqLine* irq, SerialOutput* out) : irq_(irq), out_(out) {}

  // Port offsets 0..7 from the base port.
  uint8_t Read(uint8_t offset);
  void Write(uint8_t offset, uint8_t value);
  // Host → guest bytes; returns how many fit (the rest must be retried later).
  size_t EnqueueInput(absl::Span<const uint8_t> bytes);
  size_t input_space();

  // The registers and unread input, for a snapshot (and tests). interrupt_identification is
  // filled with what an IIR read would return now (without the read's side effect).
  SerialState SaveState();
  // Puts the UART into `state` exactly (including a pending THR-empty interrupt), then
  // re-asserts the interrupt line if an interrupt is pending. Refuses (InvalidArgument, state
  // unchanged) more input than the FIFO holds.
  absl::Status RestoreState(const SerialState& state);

 private:
  // The IIR interrupt id bits (without FIFO bits) for the current state. Requires mu_.
  uint8_t IirLocked() const;
  void UpdateInterrupt();  // Requires mu_.
  bool loopback() const {  // Requires mu_.
    return (state_.modem_control & 0x10) != 0;
  }

  std::mutex mu_;
  SerialState state_ ABSL_GUARDED_BY(mu_);
  IrqLine* irq_;       // Not owned.
  SerialOutput* out_;  // Not owned.
};

}  // namespace supermachine::devices
