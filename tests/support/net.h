// File: net.h
// Test support: loopback TCP sockets on kernel-chosen ports (hermetic tests never pick a port
// number themselves): a listener, a connect, and a port nothing listens on.
#pragma once

#include <cstdint>

#include "worker/base/unique_fd.h"

namespace supermachine::test_support {

struct LoopbackListener {
  base::UniqueFd fd;
  uint16_t port = 0;
};

// A TCP socket listening on 127.0.0.1 at a port the kernel picks. Aborts when loopback TCP
// does not work at all (no test that asks for it could say anything then).
LoopbackListener ListenOnLoopback(int backlog = 16);

// A socket connected to 127.0.0.1:`port`; an invalid one (errno set) when the connect failed.
base::UniqueFd ConnectToLoopback(uint16_t port);

// A loopback port nothing listens on now: bound, read and released (another process could
// take it before the test uses it; on a test machine that window is negligible).
uint16_t UnusedLoopbackPort();

}  // namespace supermachine::test_support
