// File: frame.h
// Ethernet frames from the guest: a bounds-checked parser for the headers egress filtering
// needs (Ethernet, IPv4, IPv6 with its extension-header chain, TCP, UDP, ICMP/ICMPv6), and the
// builders for what a refused guest gets back at once — a TCP RST, or an ICMP/ICMPv6
// "administratively prohibited" unreachable — so its clients fail fast instead of timing out.
// Everything here is pure: bytes in, bytes out. Every byte comes from the hostile guest.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/types/span.h"
#include "worker/net/egress_policy.h"

namespace supermachine::net {

inline constexpr size_t kEthHeaderLen = 14;
inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpv6 = 58;

struct FrameInfo {
  uint16_t ether_type = 0;
  bool ip = false;  // IPv4 or IPv6 parsed.
  IpAddr src;
  IpAddr dst;
  size_t l3_offset = kEthHeaderLen;
  size_t l4_offset = 0;  // 0: no transport header reached (fragment, unknown chain).
  uint8_t proto = 0;     // Final next-header / protocol.
  bool fragment = false;        // Not the first fragment (no transport header in it).
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint8_t tcp_flags = 0;
  uint32_t tcp_seq = 0;
  uint32_t tcp_ack = 0;
  uint32_t l4_payload_len = 0;  // TCP: segment data length.
  uint8_t icmp_type = 0;
};

// nullopt on a malformed frame (truncated headers, lengths that disagree with the frame).
// Non-IP frames (ARP, ...) parse with ip=false.
std::optional<FrameInfo> ParseFrame(absl::Span<const uint8_t> frame);

// RFC 1071 one's-complement sum over `data`, added to `sum` (not folded).
uint32_t ChecksumAdd(uint32_t sum, absl::Span<const uint8_t> data);
uint16_t ChecksumFold(uint32_t sum);

// The guest's segment `frame` (parsed as `info`, TCP, not itself a RST) answered with a RST as
// RFC 9293 §3.10.7.1 says: from the destination to the source, checksums filled in.
std::vector<uint8_t> BuildTcpRst(absl::Span<const uint8_t> frame, const FrameInfo& info);
// An ICMP (type 3 code 13) or ICMPv6 (type 1 code 1) destination-unreachable for `frame`,
// quoting its start, from the refused destination to the guest. Empty when the frame must not
// be answered (it is itself an ICMP error, or not IP).
std::vector<uint8_t> BuildUnreachable(absl::Span<const uint8_t> frame, const FrameInfo& info);

// The egress decision for one guest frame.
struct FilterConfig {
  EgressPolicy policy;
  std::optional<IpAddr> resolver;  // DNS (port 53) to it is allowed unless denylisted.
};
struct FilterVerdict {
  bool pass = false;
  bool malformed = false;
  std::vector<uint8_t> reply;  // For a refused frame: what to hand the guest (may be empty).
  std::optional<FrameInfo> info;  // The parsed headers (unset when malformed).
};
FilterVerdict FilterGuestFrame(const FilterConfig& config, absl::Span<const uint8_t> frame);

}  // namespace supermachine::net
