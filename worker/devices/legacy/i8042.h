// File: i8042.h
// The bit of the i8042 keyboard controller a guest uses to reset the machine: command 0xfe
// (pulse the reset line) on port 0x64. We have no keyboard; reads say "no data". With
// `reboot=k` this is how Linux reboots; the VM treats the reset as "VM ended".
#pragma once

#include <cstdint>

namespace supermachine::devices {

class I8042 {
 public:
  static constexpr uint8_t kCmdResetCpu = 0xfe;

  // Port 0x60 or 0x64.
  uint8_t Read(uint16_t port) const { return 0; }
  // Returns true when the guest asked for a CPU reset.
  bool Write(uint16_t port, uint8_t value) const { return port == 0x64 && value == kCmdResetCpu; }
};

}  // namespace supermachine::devices
