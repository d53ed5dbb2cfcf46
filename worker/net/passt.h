// File: passt.h
// The passt backend: one `passt` process per VM, connected to the worker through a socketpair
// passt inherits (`--fd`, so no socket path exists to race on or leak, and passt exits when
// the worker's end closes). passt runs in the foreground as our child (ChildProcess kills and
// reaps it with the VM) and NATs the guest's traffic through ordinary host sockets: no root,
// no TAP. The guest's addressing is fixed here and handed to passt and to the guest agent
// alike (docs/networking.md): every VM sees the same private /24, which cannot clash because
// each VM has its own passt.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/base/child_process.h"
#include "worker/net/framed_stream.h"
#include "worker/net/mac.h"

namespace supermachine::net {

// The guest side of every VM's network (QEMU user-networking's numbers, familiar to users).
inline constexpr char kGuestAddr[] = "10.0.2.15";
inline constexpr int kGuestPrefixLen = 24;
// passt's address: TCP/UDP to it reaches the host's loopback (passt's gateway mapping).
inline constexpr char kGatewayAddr[] = "10.0.2.2";
// DNS forwarder address: UDP 53 to it goes to the host's first resolver.
inline constexpr char kResolverAddr[] = "10.0.2.3";
// What passt uses as its own MAC towards the guest.
inline constexpr char kPasstMac[] = "02:5a:00:00:00:fe";

struct PasstOptions {
  std::string binary = "passt";  // Looked up in PATH.
  std::vector<std::string> extra_args;
};

struct PasstBackend {
  std::unique_ptr<FramedStream> stream;
  std::optional<base::ChildProcess> process;
};

// argv for passt (without the fd number's socket): exposed for tests and docs.
std::vector<std::string> PasstArgv(const PasstOptions& options, int fd);

// Starts passt on a fresh socketpair. Errors say what to install or check.
absl::StatusOr<PasstBackend> StartPasst(const PasstOptions& options);

}  // namespace supermachine::net
