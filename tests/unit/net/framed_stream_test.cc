// File: framed_stream_test.cc
// The 4-byte length framing over a real socketpair: frames split across reads, several in one
// read, a bogus length, backpressure on output, EOF.
#include "worker/net/framed_stream.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace supermachine::net {
namespace {

struct Pair {
  std::unique_ptr<FramedStream> stream;
  base::UniqueFd peer;
};

Pair MakePair() {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {std::make_unique<FramedStream>(base::UniqueFd(fds[0])), base::UniqueFd(fds[1])};
}

void WriteAll(int fd, const std::string& bytes) {
  ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
}

std::string Framed(const std::string& payload) {
  const size_t n = payload.size();
  std::string s = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                   static_cast<char>(n >> 8), static_cast<char>(n)};
  return s + payload;
}

std::string AsString(absl::Span<const uint8_t> s) {
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}

TEST(FramedStreamTest, ReassemblesSplitAndBatchedFrames) {
  Pair p = MakePair();
  EXPECT_FALSE(p.stream->NextFrame().has_value());  // Nothing yet, no error.
  EXPECT_FALSE(p.stream->closed());
  const std::string a = Framed("hello"), b = Framed("world!");
  WriteAll(p.peer.get(), a.substr(0, 3));
  EXPECT_FALSE(p.stream->NextFrame().has_value());
  WriteAll(p.peer.get(), a.substr(3) + b);
  auto f = p.stream->NextFrame();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(AsString(*f), "hello");
  // Not popped: the same frame again.
  EXPECT_EQ(AsString(*p.stream->NextFrame()), "hello");
  p.stream->PopFrame();
  EXPECT_EQ(AsString(*p.stream->NextFrame()), "world!");
  p.stream->PopFrame();
  EXPECT_FALSE(p.stream->NextFrame().has_value());
}

TEST(FramedStreamTest, BogusLengthClosesTheStream) {
  Pair p = MakePair();
  WriteAll(p.peer.get(), std::string("\x7f\xff\xff\xff", 4));
  EXPECT_FALSE(p.stream->NextFrame().has_value());
  EXPECT_TRUE(p.stream->closed());
  EXPECT_FALSE(p.stream->Send(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>("x"), 1)));
}

TEST(FramedStreamTest, EofClosesTheStream) {
  Pair p = MakePair();
  p.peer.Reset();
  EXPECT_FALSE(p.stream->NextFrame().has_value());
  EXPECT_TRUE(p.stream->closed());
}

TEST(FramedStreamTest, SendsFramedAndPushesBack) {
  Pair p = MakePair();
  const std::string msg = "frame";
  ASSERT_TRUE(p.stream->Send(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(msg.data()),
                                                 msg.size())));
  p.stream->Flush();
  EXPECT_FALSE(p.stream->has_output());
  char buf[64];
  ASSERT_EQ(read(p.peer.get(), buf, sizeof(buf)), 9);
  EXPECT_EQ(std::string(buf, 9), Framed("frame"));
  // Nobody reads the peer: output piles up until Send refuses, never blocks.
  std::vector<uint8_t> big(60000, 0xab);
  int sent = 0;
  while (p.stream->Send(big) && sent < 1000) {
    p.stream->Flush();
    ++sent;
  }
  EXPECT_LT(sent, 1000);
  EXPECT_TRUE(p.stream->has_output());
  EXPECT_FALSE(p.stream->can_send());
  EXPECT_FALSE(p.stream->closed());
}

}  // namespace
}  // namespace supermachine::net
