// File: frame.cc
// Header parsing, checksums, RST/unreachable builders and the egress verdict.
#include "worker/net/frame.h"

#include <algorithm>
#include <cstring>

namespace supermachine::net {
namespace {

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void Put32(uint8_t* p, uint32_t v) {
  Put16(p, static_cast<uint16_t>(v >> 16));
  Put16(p + 2, static_cast<uint16_t>(v));
}

constexpr size_t kIpv4MinHeader = 20;
constexpr size_t kIpv6Header = 40;
constexpr size_t kTcpMinHeader = 20;
constexpr size_t kUdpHeader = 8;
constexpr size_t kIcmpHeader = 8;
constexpr int kMaxIpv6ExtHeaders = 8;
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpAck = 0x10;
// How much of the refused packet an unreachable quotes: enough for any transport header,
// within the minimum MTUs (576 for IPv4, 1280 for IPv6).
constexpr size_t kIcmpv4Quote = 576 - kIpv4MinHeader - kIcmpHeader;
constexpr size_t kIcmpv6Quote = 1280 - kIpv6Header - kIcmpHeader;

// Parses the transport header at `off` (end of IP payload at `end`) into `info`.
bool ParseTransport(absl::Span<const uint8_t> f, size_t off, size_t end, FrameInfo& info) {
  const size_t avail = end - off;
  info.l4_offset = off;
  const uint8_t* p = f.data() + off;
  switch (info.proto) {
    case kProtoTcp: {
      if (avail < kTcpMinHeader) {
        return false;
      }
      const size_t doff = static_cast<size_t>(p[12] >> 4) * 4;
      if (doff < kTcpMinHeader || doff > avail) {
        return false;
      }
      info.src_port = Be16(p);
      info.dst_port = Be16(p + 2);
      info.tcp_seq = Be32(p + 4);
      info.tcp_ack = Be32(p + 8);
      info.tcp_flags = p[13];
      info.l4_payload_len = static_cast<uint32_t>(avail - doff);
      return true;
    }
    case kProtoUdp:
      if (avail < kUdpHeader) {
        return false;
      }
      info.src_port = Be16(p);
      info.dst_port = Be16(p + 2);
      return true;
    case kProtoIcmp:
    case kProtoIcmpv6:
      if (avail < 4) {
        return false;
      }
      info.icmp_type = p[0];
      return true;
    default:
      return true;  // Other protocols: the decision is by destination alone.
  }
}

}  // namespace

std::optional<FrameInfo> ParseFrame(absl::Span<const uint8_t> f) {
  if (f.size() < kEthHeaderLen) {
    return std::nullopt;
  }
  FrameInfo info;
  info.ether_type = Be16(f.data() + 12);
  const size_t l3 = kEthHeaderLen;
  info.l3_offset = l3;
  if (info.ether_type == kEtherTypeIpv4) {
    if (f.size() < l3 + kIpv4MinHeader) {
      return std::nullopt;
    }
    const uint8_t* ip = f.data() + l3;
    const size_t ihl = static_cast<size_t>(ip[0] & 0x0f) * 4;
    const size_t total = Be16(ip + 2);
    // Ethernet may pad a short packet, so the frame can be longer than the IP packet.
    if ((ip[0] >> 4) != 4 || ihl < kIpv4MinHeader || total < ihl || l3 + total > f.size()) {
      return std::nullopt;
    }
    info.ip = true;
    std::memcpy(info.src.b.data(), ip + 12, 4);
    std::memcpy(info.dst.b.data(), ip + 16, 4);
    info.proto = ip[9];
    info.fragment = (Be16(ip + 6) & 0x1fff) != 0;
    if (info.fragment) {
      return info;
    }
    if (!ParseTransport(f, l3 + ihl, l3 + total, info)) {
      return std::nullopt;
    }
    return info;
  }
  if (info.ether_type == kEtherTypeIpv6) {
    if (f.size() < l3 + kIpv6Header) {
      return std::nullopt;
    }
    const uint8_t* ip = f.data() + l3;
    const size_t end = l3 + kIpv6Header + Be16(ip + 4);
    if ((ip[0] >> 4) != 6 || end > f.size()) {
      return std::nullopt;
    }
    info.ip = true;
    info.src.v6 = info.dst.v6 = true;
    std::memcpy(info.src.b.data(), ip + 8, 16);
    std::memcpy(info.dst.b.data(), ip + 24, 16);
    uint8_t next = ip[6];
    size_t off = l3 + kIpv6Header;
    for (int i = 0;; ++i) {
      if (i == kMaxIpv6ExtHeaders) {
        return std::nullopt;
      }
      size_t len = 0;
      if (next == 0 || next == 60) {  // Hop-by-hop, destination options.
        if (off + 8 > end) {
          return std::nullopt;
        }
        len = (static_cast<size_t>(f[off + 1]) + 1) * 8;
      } else if (next == 44) {  // Fragment.
        if (off + 8 > end) {
          return std::nullopt;
        }
        if ((Be16(f.data() + off + 2) & 0xfff8) != 0) {
          info.proto = f[off];
          info.fragment = true;
          return info;
        }
        len = 8;
      } else if (next == 43) {
        // A routing header can send the packet on past the destination we would judge:
        // refuse it outright rather than follow the segment list.
        return std::nullopt;
      } else {
        break;
      }
      if (off + len > end) {
        return std::nullopt;
      }
      next = f[off];
      off += len;
    }
    info.proto = next;
    if (!ParseTransport(f, off, end, info)) {
      return std::nullopt;
    }
    return info;
  }
  return info;  // ARP and others: no IP layer.
}

uint32_t ChecksumAdd(uint32_t sum, absl::Span<const uint8_t> data) {
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) {
    sum += Be16(data.data() + i);
  }
  if (i < data.size()) {
    sum += static_cast<uint32_t>(data[i]) << 8;
  }
  return sum;
}

uint16_t ChecksumFold(uint32_t sum) {
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<uint16_t>(~sum);
}

namespace {

// Ethernet + IP header for a reply from info.dst to info.src carrying `l4_len` bytes of
// protocol `proto`; returns the frame sized to hold them and the L4 offset.
std::vector<uint8_t> ReplyHeaders(absl::Span<const uint8_t> frame, const FrameInfo& info,
                                  uint8_t proto, size_t l4_len, size_t* l4_off) {
  const bool v6 = info.src.v6;
  const size_t ip_len = v6 ? kIpv6Header : kIpv4MinHeader;
  std::vector<uint8_t> out(kEthHeaderLen + ip_len + l4_len, 0);
  std::memcpy(out.data(), frame.data() + 6, 6);      // To the guest's MAC...
  std::memcpy(out.data() + 6, frame.data(), 6);      // ...from the MAC it sent to.
  Put16(out.data() + 12, v6 ? kEtherTypeIpv6 : kEtherTypeIpv4);
  uint8_t* ip = out.data() + kEthHeaderLen;
  if (v6) {
    ip[0] = 0x60;
    Put16(ip + 4, static_cast<uint16_t>(l4_len));
    ip[6] = proto;
    ip[7] = 64;
    std::memcpy(ip + 8, info.dst.b.data(), 16);
    std::memcpy(ip + 24, info.src.b.data(), 16);
  } else {
    ip[0] = 0x45;
    Put16(ip + 2, static_cast<uint16_t>(kIpv4MinHeader + l4_len));
    Put16(ip + 6, 0x4000);  // DF
    ip[8] = 64;
    ip[9] = proto;
    std::memcpy(ip + 12, info.dst.b.data(), 4);
    std::memcpy(ip + 16, info.src.b.data(), 4);
    Put16(ip + 10, ChecksumFold(ChecksumAdd(0, absl::MakeConstSpan(ip, kIpv4MinHeader))));
  }
  *l4_off = kEthHeaderLen + ip_len;
  return out;
}

// Fills the L4 checksum at `csum_at` (offset within L4) using the pseudo-header for ICMPv6,
// TCP and UDP (ICMPv4 has none).
void FillL4Checksum(std::vector<uint8_t>& out, size_t l4_off, uint8_t proto, size_t csum_at) {
  const bool v6 = Be16(out.data() + 12) == kEtherTypeIpv6;
  const size_t l4_len = out.size() - l4_off;
  uint32_t sum = 0;
  if (proto != kProtoIcmp) {
    const uint8_t* ip = out.data() + kEthHeaderLen;
    if (v6) {
      sum = ChecksumAdd(sum, absl::MakeConstSpan(ip + 8, 32));
    } else {
      sum = ChecksumAdd(sum, absl::MakeConstSpan(ip + 12, 8));
    }
    sum += static_cast<uint32_t>(l4_len) + proto;
  }
  sum = ChecksumAdd(sum, absl::MakeConstSpan(out.data() + l4_off, l4_len));
  Put16(out.data() + l4_off + csum_at, ChecksumFold(sum));
}

}  // namespace

std::vector<uint8_t> BuildTcpRst(absl::Span<const uint8_t> frame, const FrameInfo& info) {
  size_t l4 = 0;
  std::vector<uint8_t> out = ReplyHeaders(frame, info, kProtoTcp, kTcpMinHeader, &l4);
  uint8_t* t = out.data() + l4;
  Put16(t, info.dst_port);
  Put16(t + 2, info.src_port);
  if (info.tcp_flags & kTcpAck) {
    Put32(t + 4, info.tcp_ack);
    t[13] = kTcpRst;
  } else {
    const uint32_t seg_len = info.l4_payload_len + ((info.tcp_flags & kTcpSyn) ? 1 : 0) +
                             ((info.tcp_flags & kTcpFin) ? 1 : 0);
    Put32(t + 8, info.tcp_seq + seg_len);
    t[13] = kTcpRst | kTcpAck;
  }
  t[12] = 5 << 4;
  FillL4Checksum(out, l4, kProtoTcp, 16);
  return out;
}

std::vector<uint8_t> BuildUnreachable(absl::Span<const uint8_t> frame, const FrameInfo& info) {
  if (!info.ip) {
    return {};
  }
  const bool v6 = info.src.v6;
  // Never answer an ICMP error (RFC 1122 §3.2.2, RFC 4443 §2.4 e), nor a multicast destination.
  if (!info.fragment && info.l4_offset != 0) {
    if (!v6 && info.proto == kProtoIcmp &&
        (info.icmp_type == 3 || info.icmp_type == 4 || info.icmp_type == 5 ||
         info.icmp_type == 11 || info.icmp_type == 12)) {
      return {};
    }
    if (v6 && info.proto == kProtoIcmpv6 && info.icmp_type < 128) {
      return {};
    }
  }
  if (v6 ? info.dst.b[0] == 0xff : info.dst.b[0] >= 224) {
    return {};
  }
  const size_t ip_packet = frame.size() - kEthHeaderLen;
  const size_t quote = std::min(ip_packet, v6 ? kIcmpv6Quote : kIcmpv4Quote);
  const uint8_t proto = v6 ? kProtoIcmpv6 : kProtoIcmp;
  size_t l4 = 0;
  std::vector<uint8_t> out = ReplyHeaders(frame, info, proto, kIcmpHeader + quote, &l4);
  out[l4] = v6 ? 1 : 3;     // Destination unreachable.
  out[l4 + 1] = v6 ? 1 : 13;  // Administratively prohibited.
  std::memcpy(out.data() + l4 + kIcmpHeader, frame.data() + kEthHeaderLen, quote);
  FillL4Checksum(out, l4, proto, 2);
  return out;
}

FilterVerdict FilterGuestFrame(const FilterConfig& config, absl::Span<const uint8_t> frame) {
  FilterVerdict v;
  std::optional<FrameInfo> info = ParseFrame(frame);
  if (!info.has_value()) {
    v.malformed = true;
    return v;
  }
  v.info = info;
  if (!info->ip) {
    // ARP is how the guest finds the gateway; anything else non-IP only under allow_all.
    v.pass = info->ether_type == kEtherTypeArp ||
             config.policy.kind == EgressPolicy::Kind::kAllowAll;
    return v;
  }
  const bool have_l4 = !info->fragment && info->l4_offset != 0;
  // Link-level control the backend answers itself: neighbour discovery, router solicitation.
  if (have_l4 && info->proto == kProtoIcmpv6 && info->icmp_type >= 133 &&
      info->icmp_type <= 137) {
    v.pass = true;
    return v;
  }
  Destination dst{.addr = info->dst};
  dst.dns_to_resolver = config.resolver.has_value() && *config.resolver == info->dst &&
                        have_l4 && (info->proto == kProtoUdp || info->proto == kProtoTcp) &&
                        info->dst_port == 53;
  if (Allowed(config.policy, dst)) {
    v.pass = true;
    return v;
  }
  if (have_l4 && info->proto == kProtoTcp) {
    if (!(info->tcp_flags & kTcpRst)) {
      v.reply = BuildTcpRst(frame, *info);
    }
  } else {
    v.reply = BuildUnreachable(frame, *info);
  }
  return v;
}

}  // namespace supermachine::net
