// File: frame_test.cc
// Frame parser on valid and malformed frames, the RST and unreachable builders (fields and
// checksums, verified independently of how they were computed), and filter verdicts.
#include "worker/net/frame.h"

#include "gtest/gtest.h"
#include "tests/unit/net/test_frames.h"

namespace supermachine::net {
namespace {

using namespace testing;  // NOLINT: test frame helpers.

const IpAddr kGuest4 = Ip("10.0.2.15");
const IpAddr kGuest6 = Ip("fd00::15");

uint16_t Be16(const std::vector<uint8_t>& f, size_t off) {
  return static_cast<uint16_t>((f[off] << 8) | f[off + 1]);
}

// Sums a reply's transport checksum with its pseudo-header: valid iff the folded sum is 0.
bool L4ChecksumValid(const std::vector<uint8_t>& f) {
  const bool v6 = Be16(f, 12) == kEtherTypeIpv6;
  const size_t l3 = kEthHeaderLen;
  const size_t l4 = l3 + (v6 ? 40 : 20);
  const size_t len = f.size() - l4;
  const uint8_t proto = v6 ? f[l3 + 6] : f[l3 + 9];
  uint32_t sum = 0;
  if (proto != kProtoIcmp) {
    sum = v6 ? ChecksumAdd(0, absl::MakeConstSpan(f.data() + l3 + 8, 32))
             : ChecksumAdd(0, absl::MakeConstSpan(f.data() + l3 + 12, 8));
    sum += static_cast<uint32_t>(len) + proto;
  }
  sum = ChecksumAdd(sum, absl::MakeConstSpan(f.data() + l4, len));
  return ChecksumFold(sum) == 0;
}

TEST(ChecksumTest, Rfc1071Example) {
  const std::vector<uint8_t> data = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(ChecksumFold(ChecksumAdd(0, data)), 0x220d);
  const std::vector<uint8_t> odd = {0x01};  // Odd length pads with a zero byte.
  EXPECT_EQ(ChecksumFold(ChecksumAdd(0, odd)), static_cast<uint16_t>(~0x0100));
}

TEST(ParseFrameTest, ValidFrames) {
  auto syn = IpFrame(kGuest4, Ip("93.184.216.34"), kProtoTcp, Tcp(40000, 443, kSyn, 1000, 0));
  auto info = ParseFrame(syn);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->ip);
  EXPECT_EQ(info->dst, Ip("93.184.216.34"));
  EXPECT_EQ(info->proto, kProtoTcp);
  EXPECT_EQ(info->src_port, 40000);
  EXPECT_EQ(info->dst_port, 443);
  EXPECT_EQ(info->tcp_flags, kSyn);
  EXPECT_EQ(info->tcp_seq, 1000u);
  EXPECT_EQ(info->l4_payload_len, 0u);

  auto data = IpFrame(kGuest6, Ip("2001:db8::1"), kProtoTcp, Tcp(1, 2, kAck, 5, 6, 100));
  info = ParseFrame(data);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->dst.v6);
  EXPECT_EQ(info->l4_payload_len, 100u);

  auto udp = IpFrame(kGuest4, Ip("10.0.2.3"), kProtoUdp, Udp(5353, 53));
  udp.resize(udp.size() + 6, 0);  // Ethernet padding after the IP packet is fine.
  info = ParseFrame(udp);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->dst_port, 53);

  // IPv6 with a hop-by-hop header in front of ICMPv6.
  std::vector<uint8_t> ext = {kProtoIcmpv6, 0, 0, 0, 0, 0, 0, 0};
  auto icmp = Icmp(128);
  ext.insert(ext.end(), icmp.begin(), icmp.end());
  info = ParseFrame(IpFrame(kGuest6, Ip("2001:db8::1"), 0, ext));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->proto, kProtoIcmpv6);
  EXPECT_EQ(info->icmp_type, 128);

  std::vector<uint8_t> arp(42, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  info = ParseFrame(arp);
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->ip);
}

TEST(ParseFrameTest, MalformedFramesAreRejected) {
  const auto good = IpFrame(kGuest4, Ip("1.1.1.1"), kProtoTcp, Tcp(1, 80, kSyn, 0, 0));
  const auto good6 = IpFrame(kGuest6, Ip("2001:db8::1"), kProtoUdp, Udp(1, 53));
  struct Case {
    const char* what;
    std::vector<uint8_t> frame;
  };
  std::vector<Case> cases;
  cases.push_back({"empty", {}});
  cases.push_back({"short ethernet", std::vector<uint8_t>(good.begin(), good.begin() + 10)});
  cases.push_back({"truncated ipv4", std::vector<uint8_t>(good.begin(), good.begin() + 30)});
  cases.push_back({"truncated tcp", std::vector<uint8_t>(good.begin(), good.end() - 1)});
  auto big_total = good;
  big_total[14 + 3] = 0xff;  // total length beyond the frame
  cases.push_back({"ipv4 total length too big", big_total});
  auto small_total = good;
  small_total[14 + 2] = 0;
  small_total[14 + 3] = 10;  // shorter than the header
  cases.push_back({"ipv4 total < ihl", small_total});
  auto bad_ihl = good;
  bad_ihl[14] = 0x44;
  cases.push_back({"ihl 4", bad_ihl});
  auto bad_version = good;
  bad_version[14] = 0x65;
  cases.push_back({"version 6 in ipv4 ethertype", bad_version});
  auto bad_doff = good;
  bad_doff[14 + 20 + 12] = 0xf0;  // 60-byte TCP header in a 20-byte segment
  cases.push_back({"tcp data offset too big", bad_doff});
  auto small_doff = good;
  small_doff[14 + 20 + 12] = 0x40;
  cases.push_back({"tcp data offset < 5", small_doff});
  auto big_payload6 = good6;
  big_payload6[14 + 4] = 0x10;
  cases.push_back({"ipv6 payload length too big", big_payload6});
  cases.push_back({"truncated udp6", std::vector<uint8_t>(good6.begin(), good6.begin() + 14 + 44)});
  auto routing = good6;
  routing[14 + 6] = 43;  // routing header: refused outright
  cases.push_back({"ipv6 routing header", routing});
  std::vector<uint8_t> chain;  // Nine hop-by-hop headers: more than we follow.
  for (int i = 0; i < 9; ++i) {
    chain.insert(chain.end(), {0, 0, 0, 0, 0, 0, 0, 0});
  }
  cases.push_back({"ipv6 header chain too long", IpFrame(kGuest6, Ip("2001:db8::1"), 0, chain)});
  for (const Case& c : cases) {
    EXPECT_FALSE(ParseFrame(c.frame).has_value()) << c.what;
    FilterVerdict v = FilterGuestFrame({.policy = {}}, c.frame);
    EXPECT_FALSE(v.pass) << c.what;
    EXPECT_TRUE(v.malformed) << c.what;
  }
}

TEST(ParseFrameTest, FragmentsCarryNoPorts) {
  auto frag = IpFrame(kGuest4, Ip("1.1.1.1"), kProtoUdp, Udp(1, 53));
  frag[14 + 6] = 0x00;
  frag[14 + 7] = 0x10;  // offset 16*8
  auto info = ParseFrame(frag);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->fragment);
  EXPECT_EQ(info->dst_port, 0);
}

TEST(ReplyTest, RstForSynV4) {
  auto syn = IpFrame(kGuest4, Ip("10.9.8.7"), kProtoTcp, Tcp(40000, 80, kSyn, 1000, 0));
  auto info = *ParseFrame(syn);
  auto rst = BuildTcpRst(syn, info);
  ASSERT_EQ(rst.size(), 14u + 20 + 20);
  EXPECT_TRUE(std::equal(rst.begin(), rst.begin() + 6, kGuestMac));
  EXPECT_TRUE(std::equal(rst.begin() + 6, rst.begin() + 12, kGwMac));
  EXPECT_EQ(ChecksumFold(ChecksumAdd(0, absl::MakeConstSpan(rst.data() + 14, 20))), 0);
  EXPECT_TRUE(L4ChecksumValid(rst));
  auto back = ParseFrame(rst);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->src, Ip("10.9.8.7"));
  EXPECT_EQ(back->dst, kGuest4);
  EXPECT_EQ(back->src_port, 80);
  EXPECT_EQ(back->dst_port, 40000);
  EXPECT_EQ(back->tcp_flags, kRst | kAck);
  EXPECT_EQ(back->tcp_seq, 0u);
  EXPECT_EQ(back->tcp_ack, 1001u);  // SYN counts one.
}

TEST(ReplyTest, RstForAckedSegmentV6) {
  auto seg = IpFrame(kGuest6, Ip("fd00::9"), kProtoTcp, Tcp(1234, 22, kAck | kFin, 50, 777, 10));
  auto rst = BuildTcpRst(seg, *ParseFrame(seg));
  EXPECT_TRUE(L4ChecksumValid(rst));
  auto back = *ParseFrame(rst);
  EXPECT_EQ(back.tcp_flags, kRst);  // RFC 9293: SEQ = SEG.ACK, no ACK.
  EXPECT_EQ(back.tcp_seq, 777u);
  EXPECT_EQ(back.src, Ip("fd00::9"));
}

TEST(ReplyTest, UnreachableV4AndV6) {
  auto udp = IpFrame(kGuest4, Ip("169.254.169.254"), kProtoUdp, Udp(999, 80, 1000));
  auto u = BuildUnreachable(udp, *ParseFrame(udp));
  ASSERT_FALSE(u.empty());
  EXPECT_EQ(u.size(), 576u + 14);  // Quote clipped to the IPv4 minimum MTU.
  EXPECT_EQ(ChecksumFold(ChecksumAdd(0, absl::MakeConstSpan(u.data() + 14, 20))), 0);
  EXPECT_TRUE(L4ChecksumValid(u));
  EXPECT_EQ(u[34], 3);   // Destination unreachable,
  EXPECT_EQ(u[35], 13);  // administratively prohibited.
  // The quote starts with the refused packet's IP header.
  EXPECT_TRUE(std::equal(u.begin() + 42, u.begin() + 62, udp.begin() + 14));

  auto ping6 = IpFrame(kGuest6, Ip("fd00::1"), kProtoIcmpv6, Icmp(128));
  auto u6 = BuildUnreachable(ping6, *ParseFrame(ping6));
  ASSERT_FALSE(u6.empty());
  EXPECT_TRUE(L4ChecksumValid(u6));
  EXPECT_EQ(u6[54], 1);
  EXPECT_EQ(u6[55], 1);
  EXPECT_EQ(u6.size(), 14u + 40 + 8 + (ping6.size() - 14));
}

TEST(ReplyTest, NoUnreachableForIcmpErrorsOrMulticast) {
  auto err = IpFrame(kGuest4, Ip("10.0.0.1"), kProtoIcmp, Icmp(3));
  EXPECT_TRUE(BuildUnreachable(err, *ParseFrame(err)).empty());
  auto err6 = IpFrame(kGuest6, Ip("fd00::1"), kProtoIcmpv6, Icmp(1));
  EXPECT_TRUE(BuildUnreachable(err6, *ParseFrame(err6)).empty());
  auto mc = IpFrame(kGuest4, Ip("224.0.0.251"), kProtoUdp, Udp(5353, 5353));
  EXPECT_TRUE(BuildUnreachable(mc, *ParseFrame(mc)).empty());
}

TEST(FilterTest, Verdicts) {
  const FilterConfig deny_private{.policy = {}, .resolver = Ip("10.0.2.3")};
  // Allowed public TCP.
  auto v = FilterGuestFrame(deny_private, IpFrame(kGuest4, Ip("1.1.1.1"), kProtoTcp,
                                                  Tcp(1, 443, kSyn, 0, 0)));
  EXPECT_TRUE(v.pass);
  // Private TCP SYN: refused with a RST.
  v = FilterGuestFrame(deny_private,
                       IpFrame(kGuest4, Ip("10.0.2.2"), kProtoTcp, Tcp(1, 8080, kSyn, 0, 0)));
  EXPECT_FALSE(v.pass);
  EXPECT_FALSE(v.malformed);
  ASSERT_FALSE(v.reply.empty());
  EXPECT_EQ(ParseFrame(v.reply)->tcp_flags & kRst, kRst);
  // A RST to a refused destination gets nothing back.
  v = FilterGuestFrame(deny_private,
                       IpFrame(kGuest4, Ip("10.0.2.2"), kProtoTcp, Tcp(1, 8080, kRst, 0, 0)));
  EXPECT_FALSE(v.pass);
  EXPECT_TRUE(v.reply.empty());
  // Metadata over UDP: ICMP unreachable.
  v = FilterGuestFrame(deny_private,
                       IpFrame(kGuest4, Ip("169.254.169.254"), kProtoUdp, Udp(1, 80)));
  EXPECT_FALSE(v.pass);
  ASSERT_FALSE(v.reply.empty());
  EXPECT_EQ(ParseFrame(v.reply)->proto, kProtoIcmp);
  // DNS to the resolver passes; to another private address it does not.
  EXPECT_TRUE(FilterGuestFrame(deny_private,
                               IpFrame(kGuest4, Ip("10.0.2.3"), kProtoUdp, Udp(1, 53)))
                  .pass);
  EXPECT_FALSE(FilterGuestFrame(deny_private,
                                IpFrame(kGuest4, Ip("10.0.2.4"), kProtoUdp, Udp(1, 53)))
                   .pass);
  EXPECT_FALSE(FilterGuestFrame(deny_private,
                                IpFrame(kGuest4, Ip("10.0.2.3"), kProtoUdp, Udp(1, 54)))
                   .pass);
  // ARP always passes; other non-IP only under allow_all.
  std::vector<uint8_t> arp(42, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_TRUE(FilterGuestFrame(deny_private, arp).pass);
  std::vector<uint8_t> other(60, 0);
  other[12] = 0x88;
  other[13] = 0xcc;
  EXPECT_FALSE(FilterGuestFrame(deny_private, other).pass);
  EXPECT_TRUE(FilterGuestFrame({.policy = *ParseEgressPolicy("allow_all")}, other).pass);
  // Neighbour solicitation to a multicast address passes (link-level control).
  auto ns = IpFrame(kGuest6, Ip("ff02::1:ff00:1"), kProtoIcmpv6, Icmp(135));
  EXPECT_TRUE(FilterGuestFrame(deny_private, ns).pass);
}

}  // namespace
}  // namespace supermachine::net
