// File: guest-agent/net/net_config.h
// The guest's network settings as the worker passes them on the kernel command line
// (docs/networking.md "Guest addressing"): `sm.net=ADDR/PREFIX,GATEWAY,DNS`, IPv4. Static
// addressing is faster and simpler than a DHCP exchange at every boot, and the worker already
// fixes these numbers for passt. Pure parsing here; configure.h applies them.
#pragma once

#include <netinet/in.h>

#include <optional>
#include <string>

namespace supermachine::agent::net {

struct GuestNet {
  in_addr addr{};
  int prefix_len = 0;
  in_addr gateway{};
  in_addr dns{};
};

struct ParsedNet {
  std::optional<GuestNet> net;  // nullopt: no sm.net= (the VM has no network device).
  std::string error;            // Set when sm.net= is present but malformed.
};

// Looks for sm.net= among the whitespace-separated words of `cmdline` (the last one wins, as
// the kernel's own parameters do).
ParsedNet ParseNetCmdline(const std::string& cmdline);

}  // namespace supermachine::agent::net
