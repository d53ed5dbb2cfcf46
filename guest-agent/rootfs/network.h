// File: guest-agent/rootfs/network.h
// Identity and loopback of the guest: hostname and `lo`, done with syscalls/ioctls only.
#pragma once

#include <string>

namespace supermachine::agent {

// sethostname(); "" on success, else a message.
std::string SetHostname(const std::string& name);

// Sets IFF_UP on `lo` (SIOCGIFFLAGS/SIOCSIFFLAGS); the kernel assigns 127.0.0.1/8 and ::1 on
// up. "" on success, else a message.
std::string BringUpLoopback();

}  // namespace supermachine::agent
