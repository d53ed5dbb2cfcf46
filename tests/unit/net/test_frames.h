// File: test_frames.h
// Test helper: builds guest Ethernet frames (IPv4/IPv6 with TCP/UDP/ICMP) byte by byte, with
// valid lengths, so tests can then truncate or corrupt them on purpose.
#pragma once

#include <cstdint>
#include <vector>

#include "worker/net/egress_policy.h"
#include "worker/net/frame.h"

namespace supermachine::net::testing {

inline constexpr uint8_t kGuestMac[6] = {0x02, 0x5a, 1, 2, 3, 4};
inline constexpr uint8_t kGwMac[6] = {0x02, 0x5a, 0, 0, 0, 0xfe};

inline IpAddr Ip(const char* s) { return *ParseIp(s); }

// Ethernet + IP header + `l4` bytes of protocol `proto` from `src` to `dst`.
inline std::vector<uint8_t> IpFrame(const IpAddr& src, const IpAddr& dst, uint8_t proto,
                                    const std::vector<uint8_t>& l4) {
  std::vector<uint8_t> f;
  f.reserve(14 + 40 + l4.size());
  for (uint8_t b : kGwMac) {
    f.push_back(b);
  }
  for (uint8_t b : kGuestMac) {
    f.push_back(b);
  }
  if (src.v6) {
    f.push_back(0x86);
    f.push_back(0xdd);
    std::vector<uint8_t> ip(40, 0);
    ip[0] = 0x60;
    ip[4] = static_cast<uint8_t>(l4.size() >> 8);
    ip[5] = static_cast<uint8_t>(l4.size());
    ip[6] = proto;
    ip[7] = 64;
    std::copy(src.b.begin(), src.b.end(), ip.begin() + 8);
    std::copy(dst.b.begin(), dst.b.end(), ip.begin() + 24);
    f.insert(f.end(), ip.begin(), ip.end());
  } else {
    f.push_back(0x08);
    f.push_back(0x00);
    std::vector<uint8_t> ip(20, 0);
    ip[0] = 0x45;
    const size_t total = 20 + l4.size();
    ip[2] = static_cast<uint8_t>(total >> 8);
    ip[3] = static_cast<uint8_t>(total);
    ip[8] = 64;
    ip[9] = proto;
    std::copy(src.b.begin(), src.b.begin() + 4, ip.begin() + 12);
    std::copy(dst.b.begin(), dst.b.begin() + 4, ip.begin() + 16);
    const uint16_t c = ChecksumFold(ChecksumAdd(0, ip));
    ip[10] = static_cast<uint8_t>(c >> 8);
    ip[11] = static_cast<uint8_t>(c);
    f.insert(f.end(), ip.begin(), ip.end());
  }
  f.insert(f.end(), l4.begin(), l4.end());
  return f;
}

inline std::vector<uint8_t> Tcp(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq,
                                uint32_t ack, size_t payload = 0) {
  std::vector<uint8_t> t(20 + payload, 0);
  t[0] = static_cast<uint8_t>(sport >> 8);
  t[1] = static_cast<uint8_t>(sport);
  t[2] = static_cast<uint8_t>(dport >> 8);
  t[3] = static_cast<uint8_t>(dport);
  for (int i = 0; i < 4; ++i) {
    t[4 + i] = static_cast<uint8_t>(seq >> (24 - 8 * i));
    t[8 + i] = static_cast<uint8_t>(ack >> (24 - 8 * i));
  }
  t[12] = 5 << 4;
  t[13] = flags;
  return t;
}

inline std::vector<uint8_t> Udp(uint16_t sport, uint16_t dport, size_t payload = 4) {
  std::vector<uint8_t> u(8 + payload, 0);
  u[0] = static_cast<uint8_t>(sport >> 8);
  u[1] = static_cast<uint8_t>(sport);
  u[2] = static_cast<uint8_t>(dport >> 8);
  u[3] = static_cast<uint8_t>(dport);
  u[4] = static_cast<uint8_t>((8 + payload) >> 8);
  u[5] = static_cast<uint8_t>(8 + payload);
  return u;
}

inline std::vector<uint8_t> Icmp(uint8_t type) {
  std::vector<uint8_t> i(8, 0);
  i[0] = type;
  return i;
}

inline constexpr uint8_t kSyn = 0x02, kAck = 0x10, kRst = 0x04, kFin = 0x01;

}  // namespace supermachine::net::testing
