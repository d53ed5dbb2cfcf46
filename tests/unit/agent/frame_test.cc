// File: tests/unit/agent/frame_test.cc
// The agent frame codec: split and merged frames, limits, and a peer that closes mid-frame.
#include "guest-agent/protocol/frame.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "proto/agent.pb.h"

namespace supermachine::agent::protocol {
namespace {

using Result = FrameDecoder::Result;

std::string Frame(std::string_view payload) {
  std::string out;
  EXPECT_TRUE(AppendFrame(payload, &out));
  return out;
}

std::string Header(uint32_t n) {
  return std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
}

class SocketPair {
 public:
  SocketPair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0); }
  ~SocketPair() {
    for (int fd : fds_) {
      if (fd >= 0) {
        close(fd);
      }
    }
  }
  int a() const { return fds_[0]; }
  int b() const { return fds_[1]; }
  void CloseA() {
    close(fds_[0]);
    fds_[0] = -1;
  }
  void Send(const std::string& bytes) {
    ASSERT_EQ(write(fds_[0], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }

 private:
  int fds_[2] = {-1, -1};
};

TEST(AppendFrame, WritesBigEndianLengthThenPayload) {
  std::string out;
  ASSERT_TRUE(AppendFrame("abc", &out));
  EXPECT_EQ(out, std::string("\0\0\0\3abc", 7));
}

TEST(AppendFrame, RejectsEmptyPayload) {
  std::string out;
  EXPECT_FALSE(AppendFrame("", &out));
  EXPECT_TRUE(out.empty());
}

TEST(AppendFrame, RejectsPayloadOverLimit) {
  std::string out;
  EXPECT_FALSE(AppendFrame(std::string(kMaxFrameBytes + 1, 'x'), &out));
}

TEST(AppendFrame, AcceptsPayloadAtLimit) {
  std::string out;
  EXPECT_TRUE(AppendFrame(std::string(kMaxFrameBytes, 'x'), &out));
  EXPECT_EQ(out.size(), kMaxFrameBytes + 4);
}

TEST(FrameDecoder, DecodesFrameFedOneByteAtATime) {
  const std::string bytes = Frame("hello");
  FrameDecoder decoder;
  std::string payload;
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    decoder.Feed(&bytes[i], 1);
    ASSERT_EQ(decoder.Next(&payload), Result::kNeedMore) << "after byte " << i;
  }
  decoder.Feed(&bytes.back(), 1);
  ASSERT_EQ(decoder.Next(&payload), Result::kFrame);
  EXPECT_EQ(payload, "hello");
}

TEST(FrameDecoder, DecodesMergedFramesFromOneFeed) {
  const std::string bytes = Frame("one") + Frame("two") + Frame("3");
  FrameDecoder decoder;
  decoder.Feed(bytes.data(), bytes.size());
  std::string a, b, c, d;
  EXPECT_EQ(decoder.Next(&a), Result::kFrame);
  EXPECT_EQ(decoder.Next(&b), Result::kFrame);
  EXPECT_EQ(decoder.Next(&c), Result::kFrame);
  EXPECT_EQ(decoder.Next(&d), Result::kNeedMore);
  EXPECT_EQ(a, "one");
  EXPECT_EQ(b, "two");
  EXPECT_EQ(c, "3");
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(FrameDecoder, KeepsPartialSecondFrameBuffered) {
  const std::string second = Frame("second");
  const std::string bytes = Frame("first") + second.substr(0, 6);
  FrameDecoder decoder;
  decoder.Feed(bytes.data(), bytes.size());
  std::string payload;
  ASSERT_EQ(decoder.Next(&payload), Result::kFrame);
  EXPECT_EQ(decoder.Next(&payload), Result::kNeedMore);
  EXPECT_EQ(decoder.buffered(), 6u);
  decoder.Feed(second.data() + 6, second.size() - 6);
  ASSERT_EQ(decoder.Next(&payload), Result::kFrame);
  EXPECT_EQ(payload, "second");
}

TEST(FrameDecoder, RejectsZeroLength) {
  const std::string bytes = Header(0) + "x";
  FrameDecoder decoder;
  decoder.Feed(bytes.data(), bytes.size());
  std::string payload;
  EXPECT_EQ(decoder.Next(&payload), Result::kError);
  EXPECT_NE(decoder.error().find("zero"), std::string::npos) << decoder.error();
}

TEST(FrameDecoder, RejectsOversizeLengthBeforeItsBytesArrive) {
  const std::string bytes = Header(kMaxFrameBytes + 1);
  FrameDecoder decoder;
  decoder.Feed(bytes.data(), bytes.size());
  std::string payload;
  EXPECT_EQ(decoder.Next(&payload), Result::kError);
  EXPECT_NE(decoder.error().find("limit"), std::string::npos) << decoder.error();
}

TEST(FrameDecoder, StaysInErrorAfterMoreInput) {
  const std::string bad = Header(0);
  const std::string good = Frame("ok");
  FrameDecoder decoder;
  decoder.Feed(bad.data(), bad.size());
  std::string payload;
  ASSERT_EQ(decoder.Next(&payload), Result::kError);
  decoder.Feed(good.data(), good.size());
  EXPECT_EQ(decoder.Next(&payload), Result::kError);
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(ReadMessage, ParsesOneFrameFromSocket) {
  SocketPair pair;
  v1::Request request;
  request.mutable_stat()->set_path("/etc/hostname");
  ASSERT_EQ(WriteMessage(pair.a(), request), 0);
  v1::Request got;
  const ReadStatus status = ReadMessage(pair.b(), &got);
  ASSERT_EQ(status.result, ReadResult::kOk) << status.message;
  EXPECT_EQ(got.stat().path(), "/etc/hostname");
}

TEST(ReadMessage, ReportsCleanEofBeforeHeader) {
  SocketPair pair;
  pair.CloseA();
  v1::Request got;
  EXPECT_EQ(ReadMessage(pair.b(), &got).result, ReadResult::kEof);
}

TEST(ReadMessage, ReportsEofInsideHeaderAsMalformed) {
  SocketPair pair;
  pair.Send(std::string("\0\0", 2));
  pair.CloseA();
  v1::Request got;
  EXPECT_EQ(ReadMessage(pair.b(), &got).result, ReadResult::kMalformed);
}

TEST(ReadMessage, ReportsEofInsidePayloadAsMalformed) {
  SocketPair pair;
  pair.Send(Header(10) + "abc");
  pair.CloseA();
  v1::Request got;
  const ReadStatus status = ReadMessage(pair.b(), &got);
  EXPECT_EQ(status.result, ReadResult::kMalformed);
  EXPECT_NE(status.message.find("3 of 10"), std::string::npos) << status.message;
}

TEST(ReadMessage, RejectsZeroLengthFrame) {
  SocketPair pair;
  pair.Send(Header(0));
  v1::Request got;
  EXPECT_EQ(ReadMessage(pair.b(), &got).result, ReadResult::kMalformed);
}

TEST(ReadMessage, RejectsOversizeFrameWithoutReadingIt) {
  SocketPair pair;
  pair.Send(Header(0xffffffffu));
  v1::Request got;
  const ReadStatus status = ReadMessage(pair.b(), &got);
  EXPECT_EQ(status.result, ReadResult::kMalformed);
  EXPECT_NE(status.message.find("limit"), std::string::npos) << status.message;
}

TEST(ReadMessage, RejectsBytesThatAreNotTheMessage) {
  SocketPair pair;
  pair.Send(Header(3) + "\xff\xff\xff");
  v1::Request got;
  EXPECT_EQ(ReadMessage(pair.b(), &got).result, ReadResult::kMalformed);
}

TEST(WriteMessage, RejectsMessageThatSerializesToNothing) {
  SocketPair pair;
  v1::FileChunk empty;
  EXPECT_EQ(WriteMessage(pair.a(), empty), -EINVAL);
}

TEST(WriteMessage, ReturnsEpipeWhenPeerClosedInsteadOfRaisingSigpipe) {
  SocketPair pair;
  close(pair.b());
  v1::Request request;
  request.mutable_ping();
  // Without MSG_NOSIGNAL this would kill the test binary with SIGPIPE.
  int rc = WriteMessage(pair.a(), request);
  EXPECT_EQ(rc, -EPIPE);
}

}  // namespace
}  // namespace supermachine::agent::protocol
