// File: agent_client_test.cc
// AgentClient's non-exec calls against a fake agent: requests carry the right fields,
// responses map to values, agent errors keep their code, protocol violations are named.
#include "daemon/agent/agent_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/agent_client/fake_agent.h"

namespace supermachine::agent {
namespace {

using ::supermachine::test_support::TempDir;
using ::testing::HasSubstr;
using testing::ErrorResponse;
using testing::FakeAgent;
using testing::Recv;
using testing::Send;

absl::Time Soon() { return absl::Now() + absl::Seconds(10); }

AgentClient ClientFor(const TempDir& dir) {
  return AgentClient(std::make_unique<UnixDialer>(dir.Join("a.sock")));
}

TEST(AgentClient, PingReturnsVersionUptimeAndGeneration) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request& req) {
    ASSERT_TRUE(req.has_ping());
    v1::Response r;
    r.mutable_pong()->set_agent_version("0.1.0");
    r.mutable_pong()->set_uptime_seconds(1.5);
    r.mutable_pong()->set_generation(3);
    Send(fd, r);
  });

  auto pong = ClientFor(dir).Ping(Soon());

  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_EQ(pong->agent_version, "0.1.0");
  EXPECT_DOUBLE_EQ(pong->uptime_seconds, 1.5);
  EXPECT_EQ(pong->generation, 3u);
}

TEST(AgentClient, PingThroughHybridVsockHandshake) {
  TempDir dir;
  FakeAgent fake(
      dir.Join("v.sock"),
      [](int fd, const v1::Request&) {
        v1::Response r;
        r.mutable_pong()->set_agent_version("v");
        Send(fd, r);
      },
      {.hybrid = true});
  AgentClient client(std::make_unique<HybridVsockDialer>(dir.Join("v.sock"), 1024));

  auto pong = client.Ping(Soon());

  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_EQ(pong->agent_version, "v");
  EXPECT_EQ(fake.last_connect_port(), 1024);
}

TEST(AgentClient, AgentErrorKeepsItsCodeAndMessage) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    Send(fd, ErrorResponse(static_cast<int>(absl::StatusCode::kPermissionDenied),
                           "open /root/x: Permission denied"));
  });

  auto info = ClientFor(dir).Stat("/root/x", Soon());

  EXPECT_TRUE(absl::IsPermissionDenied(info.status())) << info.status();
  EXPECT_THAT(info.status().message(), HasSubstr("stat /root/x: open /root/x: Permission denied"));
}

TEST(AgentClient, OutOfRangeAgentErrorCodeBecomesUnknown) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"),
                 [](int fd, const v1::Request&) { Send(fd, ErrorResponse(99, "odd")); });

  auto st = ClientFor(dir).Shutdown(Soon());

  EXPECT_EQ(st.code(), absl::StatusCode::kUnknown) << st;
}

TEST(AgentClient, WrongResponseKindIsInternal) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    v1::Response r;
    r.mutable_ready();
    Send(fd, r);
  });

  auto pong = ClientFor(dir).Ping(Soon());

  EXPECT_TRUE(absl::IsInternal(pong.status())) << pong.status();
  EXPECT_THAT(pong.status().message(), HasSubstr("answered ready, expected pong"));
}

TEST(AgentClient, OversizedFrameLengthIsDataLoss) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    (void)!write(fd, "\xff\xff\xff\xff", 4);
  });

  auto pong = ClientFor(dir).Ping(Soon());

  EXPECT_TRUE(absl::IsDataLoss(pong.status())) << pong.status();
}

TEST(AgentClient, CloseWithoutAnswerIsUnavailable) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int, const v1::Request&) {});

  auto pong = ClientFor(dir).Ping(Soon());

  EXPECT_TRUE(absl::IsUnavailable(pong.status())) << pong.status();
}

TEST(AgentClient, SilentAgentHitsTheDeadline) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    char c;
    (void)!read(fd, &c, 1);  // Until the client closes.
  });

  auto pong = ClientFor(dir).Ping(absl::Now() + absl::Milliseconds(200));

  EXPECT_TRUE(absl::IsDeadlineExceeded(pong.status())) << pong.status();
}

TEST(AgentClient, WaitForAgentRetriesUntilTheAgentListens) {
  TempDir dir;
  AgentClient client = ClientFor(dir);
  std::unique_ptr<FakeAgent> fake;
  std::thread late([&] {
    absl::SleepFor(absl::Milliseconds(300));
    fake = std::make_unique<FakeAgent>(dir.Join("a.sock"), [](int fd, const v1::Request&) {
      v1::Response r;
      r.mutable_pong()->set_agent_version("late");
      Send(fd, r);
    });
  });

  auto pong = client.WaitForAgent(Soon());
  late.join();

  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_EQ(pong->agent_version, "late");
}

TEST(AgentClient, WaitForAgentGivesUpWithTheLastError) {
  TempDir dir;

  auto pong = ClientFor(dir).WaitForAgent(absl::Now() + absl::Milliseconds(200));

  EXPECT_TRUE(absl::IsDeadlineExceeded(pong.status())) << pong.status();
  EXPECT_THAT(pong.status().message(), HasSubstr("a.sock"));
}

TEST(AgentClient, ConcurrentCallsUseOneConnectionEach) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    absl::SleepFor(absl::Milliseconds(50));
    v1::Response r;
    r.mutable_pong();
    Send(fd, r);
  });
  AgentClient client = ClientFor(dir);
  std::vector<std::thread> threads;
  threads.reserve(20);
  std::atomic<int> ok{0};

  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&] { ok += client.Ping(Soon()).ok() ? 1 : 0; });
  }
  for (auto& t : threads) {
    t.join();
  }

  EXPECT_EQ(ok.load(), 20);
  EXPECT_EQ(fake.connections(), 20);
}

TEST(AgentClient, WriteFileSendsModeChunksAndEof) {
  TempDir dir;
  v1::WriteFileRequest seen;
  std::string received;
  int chunks = 0;
  FakeAgent fake(dir.Join("a.sock"), [&](int fd, const v1::Request& req) {
    seen = req.write_file();
    v1::FileChunk c;
    while (Recv(fd, &c)) {
      ++chunks;
      received += c.data();
      if (c.eof()) {
        break;
      }
    }
    v1::Response r;
    r.mutable_file_written()->set_size(received.size());
    Send(fd, r);
  });
  std::string data(2 * protocol::kMaxChunkBytes + 5, 'z');

  auto size = ClientFor(dir).WriteFile("/etc/x", data, {.mode = 0600, .make_parents = true},
                                       Soon());

  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(*size, data.size());
  EXPECT_EQ(received, data);
  EXPECT_EQ(chunks, 4);  // Three data chunks, then an empty one with eof.
  EXPECT_EQ(seen.path(), "/etc/x");
  EXPECT_EQ(seen.mode(), 0600u);
  EXPECT_TRUE(seen.make_parents());
}

TEST(AgentClient, WriteFileReportsTheAgentsEarlyRefusal) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    Send(fd, ErrorResponse(static_cast<int>(absl::StatusCode::kNotFound),
                           "/nope/x: parent directory does not exist"));
    shutdown(fd, SHUT_RDWR);
  });
  std::string data(8 * protocol::kMaxChunkBytes, 'z');

  auto size = ClientFor(dir).WriteFile("/nope/x", data, {}, Soon());

  EXPECT_TRUE(absl::IsNotFound(size.status())) << size.status();
}

TEST(AgentClient, ReadFileJoinsChunksAfterTheFileInfo) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request& req) {
    ASSERT_EQ(req.read_file().path(), "/etc/hostname");
    ASSERT_EQ(req.read_file().max_bytes(), 100u);
    v1::Response r;
    r.mutable_file_info()->set_exists(true);
    r.mutable_file_info()->set_size(6);
    r.mutable_file_info()->set_mode(0100644);
    Send(fd, r);
    v1::FileChunk c;
    c.set_data("abc");
    Send(fd, c);
    c.set_data("def");
    c.set_eof(true);
    Send(fd, c);
  });

  auto data = ClientFor(dir).ReadFile("/etc/hostname", 100, Soon());

  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "abcdef");
}

TEST(AgentClient, ReadFileRefusesMoreThanTheLimit) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    v1::Response r;
    r.mutable_file_info()->set_exists(true);
    Send(fd, r);
    v1::FileChunk c;
    c.set_data(std::string(10, 'x'));
    c.set_eof(true);
    Send(fd, c);
  });

  auto data = ClientFor(dir).ReadFile("/big", 4, Soon());

  EXPECT_TRUE(absl::IsDataLoss(data.status())) << data.status();
}

TEST(AgentClient, StatOfMissingPathIsNotAnError) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request& req) {
    ASSERT_EQ(req.stat().path(), "/missing");
    v1::Response r;
    r.mutable_file_info()->set_exists(false);
    Send(fd, r);
  });

  auto info = ClientFor(dir).Stat("/missing", Soon());

  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->exists);
}

TEST(AgentClient, ConnectKeepsBytesTheServerSentWithTheReply) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request& req) {
    ASSERT_EQ(req.connect().port(), 6379u);
    v1::Response r;
    r.mutable_connected();
    std::string out;
    std::string payload = r.SerializeAsString();
    ASSERT_TRUE(protocol::AppendFrame(payload, &out));
    out += "+BANNER\r\n";  // A server that speaks first, in the same segment as the reply.
    (void)!write(fd, out.data(), out.size());
    char buf[16];
    ssize_t n = read(fd, buf, sizeof(buf));  // Echo one read back.
    if (n > 0) {
      (void)!write(fd, buf, static_cast<size_t>(n));
    }
  });

  auto fd = ClientFor(dir).Connect(6379, Soon());

  ASSERT_TRUE(fd.ok()) << fd.status();
  std::string got(9, '\0');
  ASSERT_EQ(read(fd->get(), got.data(), got.size()), 9);
  EXPECT_EQ(got, "+BANNER\r\n");
  ASSERT_EQ(write(fd->get(), "ping", 4), 4);
  std::string echo(4, '\0');
  ASSERT_EQ(read(fd->get(), echo.data(), echo.size()), 4);
  EXPECT_EQ(echo, "ping");
}

TEST(AgentClient, ConnectToClosedGuestPortKeepsTheAgentsCode) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    Send(fd, ErrorResponse(static_cast<int>(absl::StatusCode::kUnavailable),
                           "connect 127.0.0.1:81: Connection refused"));
  });

  auto fd = ClientFor(dir).Connect(81, Soon());

  EXPECT_TRUE(absl::IsUnavailable(fd.status())) << fd.status();
}

TEST(AgentClient, WaitReadySendsPortAndTheTimeLeft) {
  TempDir dir;
  v1::WaitReadyRequest seen;
  FakeAgent fake(dir.Join("a.sock"), [&](int fd, const v1::Request& req) {
    seen = req.wait_ready();
    v1::Response r;
    r.mutable_ready()->set_waited_us(1500);
    Send(fd, r);
  });

  auto waited = ClientFor(dir).WaitReady(ReadyCondition::ListenerPort(8080),
                                         absl::Now() + absl::Seconds(30));

  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(*waited, absl::Microseconds(1500));
  EXPECT_EQ(seen.listener_port(), 8080u);
  EXPECT_GT(seen.timeout_ms(), 25000u);
  EXPECT_LE(seen.timeout_ms(), 30000u);
}

TEST(AgentClient, WaitReadyTimeoutFromTheAgentIsDeadlineExceeded) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    Send(fd, ErrorResponse(static_cast<int>(absl::StatusCode::kDeadlineExceeded),
                           "no listener on port 8080 after 100ms"));
  });

  auto waited = ClientFor(dir).WaitReady(ReadyCondition::ListenerPort(8080),
                                         absl::Now() + absl::Milliseconds(100));

  EXPECT_TRUE(absl::IsDeadlineExceeded(waited.status())) << waited.status();
  EXPECT_THAT(waited.status().message(), HasSubstr("listener on guest port 8080"));
}

TEST(AgentClient, WaitExitReturnsTheWorkloadStatus) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request& req) {
    ASSERT_TRUE(req.has_wait_exit());
    v1::Response r;
    r.mutable_workload_exit()->mutable_status()->set_signal(15);
    r.mutable_workload_exit()->set_restarts(2);
    Send(fd, r);
  });

  auto exit = ClientFor(dir).WaitExit(Soon());

  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->status.ToString(), "killed by signal 15");
  EXPECT_EQ(exit->status.ShellCode(), 143);
  EXPECT_EQ(exit->restarts, 2u);
}

TEST(AgentClient, RestoredSendsIdentityAndReturnsTheGeneration) {
  TempDir dir;
  v1::RestoredRequest seen;
  FakeAgent fake(dir.Join("a.sock"), [&](int fd, const v1::Request& req) {
    seen = req.restored();
    v1::Response r;
    r.mutable_restored()->set_generation(req.restored().generation());
    Send(fd, r);
  });
  RestoreInfo info{.entropy = std::string(32, '\x5a'),
                   .wall_clock = absl::FromUnixSeconds(1700000000),
                   .vm_id = "vm-1",
                   .hostname = "h",
                   .machine_id = std::string(32, 'a'),
                   .generation = 7};

  auto gen = ClientFor(dir).Restored(info, Soon());

  ASSERT_TRUE(gen.ok()) << gen.status();
  EXPECT_EQ(*gen, 7u);
  EXPECT_EQ(seen.entropy(), info.entropy);
  EXPECT_EQ(seen.wall_clock_ns(), int64_t{1700000000} * 1000000000);
  EXPECT_EQ(seen.vm_id(), "vm-1");
  EXPECT_EQ(seen.machine_id(), info.machine_id);
}

TEST(AgentClient, ShutdownIsAcknowledged) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request& req) {
    ASSERT_TRUE(req.has_shutdown());
    v1::Response r;
    r.mutable_shutdown();
    Send(fd, r);
  });

  EXPECT_TRUE(ClientFor(dir).Shutdown(Soon()).ok());
}

}  // namespace
}  // namespace supermachine::agent
