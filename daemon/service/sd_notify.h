// File: sd_notify.h
// The sender side of systemd's notification protocol (sd_notify(3)), written out because it
// is one datagram and libsystemd is not worth a dependency for it: the state text
// ("READY=1\nSTATUS=…") is sent to the Unix datagram socket named by $NOTIFY_SOCKET; a name
// starting with '@' is in the abstract namespace (the '@' becomes a NUL byte). With
// Type=notify, systemd holds `systemctl start` and every After= unit until READY=1 arrives.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace supermachine::service {

// Sends `state` to `notify_socket` (the value of $NOTIFY_SOCKET; the caller reads the
// environment). Empty `notify_socket` means no service manager is listening: OK, nothing
// sent. A name that is neither absolute nor abstract, or too long for sockaddr_un, is
// InvalidArgument; a failed send is the errno's status.
absl::Status SdNotify(std::string_view notify_socket, std::string_view state);

}  // namespace supermachine::service
