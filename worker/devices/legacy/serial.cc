// File: serial.cc
// 8250 UART register logic.
#include "worker/devices/legacy/serial.h"

#include <errno.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace supermachine::devices {
namespace {

// Register offsets.
constexpr uint8_t kData = 0;  // RBR/THR, or DLL with DLAB.
constexpr uint8_t kIer = 1;   // IER, or DLM with DLAB.
constexpr uint8_t kIir = 2;   // IIR on read, FCR on write.
constexpr uint8_t kLcr = 3;
constexpr uint8_t kMcr = 4;
constexpr uint8_t kLsr = 5;
constexpr uint8_t kMsr = 6;
constexpr uint8_t kScr = 7;

constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kIerRecvData = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIerMask = 0x0f;
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirRecvData = 0x04;
// FIFOs enabled: the driver reads these bits after writing FCR to identify a 16550A.
constexpr uint8_t kIirFifoBits = 0xc0;
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrIdle = 0x40;
constexpr uint8_t kMcrMask = 0x1f;

}  // namespace

void FdSerialOutput::Write(uint8_t byte) {
  ssize_t n;
  do {
    n = write(fd_, &byte, 1);
  } while (n < 0 && errno == EINTR);
}

uint8_t Serial::Read(uint8_t offset) {
  std::lock_guard lock(mu_);
  switch (offset) {
    case kData:
      if (state_.line_control & kLcrDlab) {
        return state_.baud_divisor_low;
      }
      if (state_.in_buffer.empty()) {
        return 0;
      } else {
        uint8_t byte = state_.in_buffer.front();
        state_.in_buffer.pop_front();
        UpdateInterrupt();
        return byte;
      }
    case kIer:
      if (state_.line_control & kLcrDlab) {
        return state_.baud_divisor_high;
      }
      return state_.interrupt_enable;
    case kIir: {
      const uint8_t iir = IirLocked();
      if (iir == kIirThrEmpty) {
        // Reading IIR while it reports THR-empty acknowledges that interrupt (16550 spec).
        state_.thr_empty_pending = false;
      }
      return iir | kIirFifoBits;
    }
    case kLcr:
      return state_.line_control;
    case kMcr:
      return state_.modem_control;
    case kLsr:
      return kLsrThrEmpty | kLsrIdle | (state_.in_buffer.empty() ? 0 : kLsrDataReady);
    case kMsr:
      if (loopback()) {
        // In loopback the modem inputs follow the outputs: DTR→DSR, RTS→CTS, OUT1→RI,
        // OUT2→DCD. Linux's autoconfig checks exactly this before trusting the port.
        uint8_t mcr = state_.modem_control;
        return static_cast<uint8_t>(((mcr & 0x01) << 5) | ((mcr & 0x02) << 3) |
                                    ((mcr & 0x04) << 4) | ((mcr & 0x08) << 4));
      }
      return state_.modem_status;
    case kScr:
      return state_.scratch;
    default:
      return 0;
  }
}

void Serial::Write(uint8_t offset, uint8_t value) {
  std::lock_guard lock(mu_);
  switch (offset) {
    case kData:
      if (state_.line_control & kLcrDlab) {
        state_.baud_divisor_low = value;
        return;
      }
      if (loopback()) {
        if (state_.in_buffer.size() < kInputFifo) {
          state_.in_buffer.push_back(value);
        }
      } else {
        out_->Write(value);
      }
      // The byte left at once, so THR is empty again.
      if (state_.interrupt_enable & kIerThrEmpty) {
        state_.thr_empty_pending = true;
      }
      UpdateInterrupt();
      return;
    case kIer:
      if (state_.line_control & kLcrDlab) {
        state_.baud_divisor_high = value;
        return;
      } else {
        const bool thre_was_enabled = state_.interrupt_enable & kIerThrEmpty;
        state_.interrupt_enable = value & kIerMask;
        // A 16550 raises THR-empty as soon as the interrupt is enabled while THR is empty
        // (always, here); the 8250 driver's start_tx relies on that.
        if (!thre_was_enabled && (state_.interrupt_enable & kIerThrEmpty)) {
          state_.thr_empty_pending = true;
        }
        if (!(state_.interrupt_enable & kIerThrEmpty)) {
          state_.thr_empty_pending = false;
        }
        UpdateInterrupt();
      }
      return;
    case kIir:
      return;  // FCR: FIFOs are always on; clearing them is a no-op for us.
    case kLcr:
      state_.line_control = value;
      return;
    case kMcr:
      state_.modem_control = value & kMcrMask;
      return;
    case kScr:
      state_.scratch = value;
      return;
    default:
      return;  // LSR/MSR are read-only.
  }
}

uint8_t Serial::IirLocked() const {
  if ((state_.interrupt_enable & kIerRecvData) && !state_.in_buffer.empty()) {
    return kIirRecvData;
  }
  return state_.thr_empty_pending ? kIirThrEmpty : kIirNone;
}

void Serial::UpdateInterrupt() {
  const bool pending = state_.thr_empty_pending ||
                       ((state_.interrupt_enable & kIerRecvData) && !state_.in_buffer.empty());
  // OUT2 gates the interrupt line on a PC; loopback disconnects it.
  if (pending && (state_.modem_control & 0x08) && !loopback()) {
    irq_->Trigger().IgnoreError();  // A failed eventfd write means the VM is tearing down.
  }
}

size_t Serial::EnqueueInput(absl::Span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  while (n < bytes.size() && state_.in_buffer.size() < kInputFifo) {
    state_.in_buffer.push_back(bytes[n++]);
  }
  if (n > 0) {
    UpdateInterrupt();
  }
  return n;
}

size_t Serial::input_space() {
  std::lock_guard lock(mu_);
  return kInputFifo - state_.in_buffer.size();
}

SerialState Serial::SaveState() {
  std::lock_guard lock(mu_);
  SerialState s = state_;
  s.interrupt_identification = IirLocked() | kIirFifoBits;
  return s;
}

absl::Status Serial::RestoreState(const SerialState& state) {
  if (state.in_buffer.size() > kInputFifo) {
    return absl::InvalidArgumentError(absl::StrCat("serial: ", state.in_buffer.size(),
                                                   " input bytes saved, the FIFO holds ",
                                                   kInputFifo));
  }
  std::lock_guard lock(mu_);
  state_ = state;
  state_.interrupt_enable &= kIerMask;
  state_.modem_control &= kMcrMask;
  UpdateInterrupt();
  return absl::OkStatus();
}

}  // namespace supermachine::devices
