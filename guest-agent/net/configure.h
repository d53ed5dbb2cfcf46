// File: guest-agent/net/configure.h
// Applies GuestNet to the virtio-net interface with ioctls only (no ip(8) in the guest):
// link up, address and netmask, default route via the gateway, /etc/resolv.conf. After a
// restore the device has a new MAC (each clone its own) that Linux reads only when the driver
// probes, so Reconfigure unbinds and rebinds virtio_net through sysfs: the interface is
// re-created with the new MAC and without the snapshot's neighbour entries and routes, then
// configured again.
#pragma once

#include <string>

#include "guest-agent/net/net_config.h"

namespace supermachine::agent::net {

// The first interface whose driver is virtio_net ("" if none), e.g. "eth0".
std::string FindVirtioNetInterface();

// "" on success, else a message naming the step that failed.
std::string Configure(const std::string& ifname, const GuestNet& net,
                      const std::string& resolv_conf_path);

// After restore: rebind the device (new MAC, fresh interface state), then Configure.
std::string Reconfigure(const GuestNet& net, const std::string& resolv_conf_path);

// What the agent calls: reads sm.net= from /proc/cmdline; without it (no network device)
// does nothing. At boot configures the interface, after a restore re-configures it.
// resolv.conf goes to `root`/etc/resolv.conf. "" on success.
std::string ApplyFromKernelCmdline(bool after_restore, const std::string& root);

}  // namespace supermachine::agent::net
