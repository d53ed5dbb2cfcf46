// File: tests/unit/agent/ops_test.cc
// The non-exec operations against the in-process server: ping, files, stat, connect,
// wait_ready, wait_exit, restored, shutdown, and protocol errors.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "guest-agent/protocol/frame.h"
#include "tests/support/net.h"
#include "tests/unit/agent/agent_test_client.h"

namespace supermachine::agent::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kInvalidArgument = 3;
constexpr int kDeadlineExceeded = 4;
constexpr int kNotFound = 5;
constexpr int kFailedPrecondition = 9;
constexpr int kUnimplemented = 12;
constexpr int kUnavailable = 14;

// True when `fd` has input (or EOF) within `timeout_ms`.
bool Readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

std::string ReadToEof(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

using OpsTest = AgentServerTest;

TEST_F(OpsTest, PingReportsVersionUptimeAndGeneration) {
  v1::Request request;
  request.mutable_ping();
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_pong()) << r.DebugString();
  EXPECT_EQ(r.pong().agent_version(), "test-1.2.3");
  EXPECT_GT(r.pong().uptime_seconds(), 0.0);
  EXPECT_EQ(r.pong().generation(), 0u);
}

TEST_F(OpsTest, WriteThenReadBackSameBytesAndMode) {
  std::string data(3u << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<char>(i * 131 + 7);
  }
  const std::string path = dir_.Join("new/dir/file.bin");
  Conn w = Connect();
  v1::Request request;
  request.mutable_write_file()->set_path(path);
  request.mutable_write_file()->set_mode(0600);
  request.mutable_write_file()->set_make_parents(true);
  w.Send(request);
  v1::FileChunk chunk;
  for (size_t off = 0; off < data.size(); off += protocol::kMaxChunkBytes) {
    chunk.set_data(data.substr(off, protocol::kMaxChunkBytes));
    w.Send(chunk);
  }
  chunk.set_data("");
  chunk.set_eof(true);
  w.Send(chunk);
  v1::Response written;
  ASSERT_TRUE(w.Read(&written));
  ASSERT_TRUE(written.has_file_written()) << written.DebugString();
  EXPECT_EQ(written.file_written().size(), data.size());

  Conn r = Connect();
  v1::Request read;
  read.mutable_read_file()->set_path(path);
  r.Send(read);
  v1::Response info;
  ASSERT_TRUE(r.Read(&info));
  ASSERT_TRUE(info.has_file_info()) << info.DebugString();
  EXPECT_EQ(info.file_info().mode(), static_cast<uint32_t>(S_IFREG | 0600));
  EXPECT_EQ(info.file_info().size(), data.size());
  std::string got;
  v1::FileChunk in;
  while (r.Read(&in)) {
    got += in.data();
    if (in.eof()) {
      break;
    }
  }
  EXPECT_TRUE(in.eof());
  EXPECT_TRUE(got == data) << "read back " << got.size() << " bytes, wrote " << data.size();
  EXPECT_THAT(dir_.List(), ElementsAre("agent.sock", "new"));  // No temp file left behind.
}

TEST_F(OpsTest, WriteFileDefaultsToMode0644AndReplacesExisting) {
  const std::string path = dir_.Join("f");
  test_support::WriteFileOrDie(path, "old contents");
  Conn w = Connect();
  v1::Request request;
  request.mutable_write_file()->set_path(path);
  w.Send(request);
  v1::FileChunk chunk;
  chunk.set_data("new");
  chunk.set_eof(true);
  w.Send(chunk);
  v1::Response written;
  ASSERT_TRUE(w.Read(&written));
  ASSERT_TRUE(written.has_file_written()) << written.DebugString();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(test_support::ReadFileOrDie(path), "new");
}

TEST_F(OpsTest, WriteFileWithoutParentsFailsWithNotFound) {
  Conn w = Connect();
  v1::Request request;
  request.mutable_write_file()->set_path(dir_.Join("missing/f"));
  w.Send(request);
  v1::Response response;
  ASSERT_TRUE(w.Read(&response));
  ASSERT_TRUE(response.has_error()) << response.DebugString();
  EXPECT_EQ(response.error().code(), kNotFound);
  EXPECT_THAT(response.error().message(), HasSubstr("missing"));
}

TEST_F(OpsTest, WriteFileCutShortLeavesNoFile) {
  const std::string path = dir_.Join("partial");
  {
    Conn w = Connect();
    v1::Request request;
    request.mutable_write_file()->set_path(path);
    w.Send(request);
    v1::FileChunk chunk;
    chunk.set_data("some");
    w.Send(chunk);
    // Wait for the temporary file, so the close below lands mid-write.
    for (int i = 0; i < 250 && dir_.List().size() < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(dir_.List().size(), 2u);
  }  // Closed before the eof chunk.
  for (int i = 0; i < 250 && dir_.List().size() > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_THAT(dir_.List(), ElementsAre("agent.sock"));
}

TEST_F(OpsTest, ReadFileOverMaxBytesIsFailedPrecondition) {
  test_support::WriteFileOrDie(dir_.Join("big"), std::string(100, 'x'));
  v1::Request request;
  request.mutable_read_file()->set_path(dir_.Join("big"));
  request.mutable_read_file()->set_max_bytes(99);
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_error()) << r.DebugString();
  EXPECT_EQ(r.error().code(), kFailedPrecondition);
}

TEST_F(OpsTest, ReadEmptyFileSendsOneEofChunk) {
  test_support::WriteFileOrDie(dir_.Join("empty"), "");
  Conn c = Connect();
  v1::Request request;
  request.mutable_read_file()->set_path(dir_.Join("empty"));
  c.Send(request);
  v1::Response info;
  ASSERT_TRUE(c.Read(&info));
  ASSERT_TRUE(info.has_file_info());
  v1::FileChunk chunk;
  ASSERT_TRUE(c.Read(&chunk));
  EXPECT_TRUE(chunk.eof());
  EXPECT_EQ(chunk.data(), "");
}

TEST_F(OpsTest, ReadMissingFileIsNotFound) {
  v1::Request request;
  request.mutable_read_file()->set_path(dir_.Join("nope"));
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_error());
  EXPECT_EQ(r.error().code(), kNotFound);
}

TEST_F(OpsTest, StatMissingPathSaysDoesNotExist) {
  v1::Request request;
  request.mutable_stat()->set_path(dir_.Join("nope"));
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_file_info()) << r.DebugString();
  EXPECT_FALSE(r.file_info().exists());
}

TEST_F(OpsTest, StatDirectoryReportsItsType) {
  v1::Request request;
  request.mutable_stat()->set_path(dir_.path());
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_file_info());
  EXPECT_TRUE(r.file_info().exists());
  EXPECT_TRUE(S_ISDIR(r.file_info().mode()));
}

TEST_F(OpsTest, ConnectSplicesToTcpEchoServerWithHalfClose) {
  const test_support::LoopbackListener listener = test_support::ListenOnLoopback();
  std::thread echo([fd = listener.fd.get()] {
    int c = ::accept(fd, nullptr, nullptr);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(c, buf, sizeof(buf))) > 0) {
      (void)!::write(c, buf, static_cast<size_t>(n));
    }
    ::close(c);  // Echo everything until the client's EOF, then close.
  });
  Conn conn = Connect();
  v1::Request request;
  request.mutable_connect()->set_port(listener.port);
  conn.Send(request);
  v1::Response connected;
  ASSERT_TRUE(conn.Read(&connected));
  ASSERT_TRUE(connected.has_connected()) << connected.DebugString();
  const std::string payload = std::string(200000, 'z') + "end";
  conn.SendRaw(payload);
  conn.ShutdownWrite();  // Our EOF must reach the echo server, and its reply still come back.
  EXPECT_TRUE(ReadToEof(conn.fd()) == payload);
  echo.join();
}

TEST_F(OpsTest, ConnectToClosedPortIsUnavailable) {
  v1::Request request;
  request.mutable_connect()->set_port(test_support::UnusedLoopbackPort());
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_error()) << r.DebugString();
  EXPECT_EQ(r.error().code(), kUnavailable);
  EXPECT_THAT(r.error().message(), HasSubstr("127.0.0.1"));
}

// A service whose accept queue is full drops SYNs, so a connect to it neither succeeds nor
// fails for about two minutes. When the host stops waiting (the daemon's forward gives up
// after 10 s and closes), the agent must let go at once rather than sit in the kernel's SYN
// retries: the server then stops promptly, which it cannot while a handler is stuck.
TEST_F(OpsTest, ConnectThatCannotCompleteEndsWhenTheHostHangsUp) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  // Fill the accept queue (nobody accepts): later SYNs are dropped.
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    fillers.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    (void)::connect(fillers.back(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  }
  Conn conn = Connect();
  v1::Request request;
  request.mutable_connect()->set_port(ntohs(addr.sin_port));
  conn.Send(request);
  EXPECT_FALSE(Readable(conn.fd(), 500)) << "answered although the port cannot accept";
  conn.Close();  // the host gives up
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  run_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  for (int fd : fillers) {
    ::close(fd);
  }
  ::close(listener);
}

TEST_F(OpsTest, ConnectRejectsBadAddress) {
  v1::Request request;
  request.mutable_connect()->set_port(80);
  request.mutable_connect()->set_address("not-an-ip");
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_error());
  EXPECT_EQ(r.error().code(), kInvalidArgument);
}

TEST_F(OpsTest, WaitReadyFiresOnceAProcessListens) {
  const uint16_t port = test_support::UnusedLoopbackPort();
  Conn conn = Connect();
  v1::Request request;
  request.mutable_wait_ready()->set_listener_port(port);
  request.mutable_wait_ready()->set_timeout_ms(20000);
  conn.Send(request);
  EXPECT_FALSE(Readable(conn.fd(), 300)) << "answered before anything listened";
  // The listener comes from a separate process, as a workload's would; it stays up until the
  // test has its answer (then the closed stdin ends it).
  v1::ExecRequest exec = Command(
      {"python3", "-c",
       "import socket,sys; s=socket.socket(); "
       "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
       "s.bind(('127.0.0.1'," + std::to_string(port) + ")); s.listen(); sys.stdin.read()"});
  exec.set_stdin(true);
  Conn serve = Connect();
  v1::Request start;
  *start.mutable_exec() = exec;
  serve.Send(start);
  v1::Response started;
  ASSERT_TRUE(serve.Read(&started));
  ASSERT_TRUE(started.has_exec_started()) << started.DebugString();
  v1::Response r;
  ASSERT_TRUE(conn.Read(&r));
  ASSERT_TRUE(r.has_ready()) << r.DebugString();
  EXPECT_GE(r.ready().waited_us(), 300000u);
  v1::ExecInput eof;
  eof.set_stdin_eof(true);
  serve.Send(eof);
  std::string stderr_data;
  v1::ExecOutput out;
  while (serve.Read(&out) && !out.has_exit()) {
    stderr_data += out.stderr();
  }
  ASSERT_TRUE(out.has_exit());
  EXPECT_EQ(out.exit().exit_code(), 0) << stderr_data;
}

TEST_F(OpsTest, WaitReadyTimesOutWithDeadlineExceeded) {
  v1::Request request;
  request.mutable_wait_ready()->set_listener_port(test_support::UnusedLoopbackPort());
  request.mutable_wait_ready()->set_timeout_ms(150);
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_error()) << r.DebugString();
  EXPECT_EQ(r.error().code(), kDeadlineExceeded);
  EXPECT_THAT(r.error().message(), HasSubstr("listener"));
}

TEST_F(OpsTest, WaitReadyWorkloadExitedFiresOnExit) {
  Conn conn = Connect();
  v1::Request request;
  request.mutable_wait_ready()->set_workload_exited(true);
  request.mutable_wait_ready()->set_timeout_ms(20000);
  conn.Send(request);
  EXPECT_FALSE(Readable(conn.fd(), 200)) << "answered before the workload exited";
  workload_.Exit(WorkloadExitInfo{});
  v1::Response r;
  ASSERT_TRUE(conn.Read(&r));
  ASSERT_TRUE(r.has_ready()) << r.DebugString();
}

TEST_F(OpsTest, WaitReadyParkedFiresAtOnceForAParkedWorkload) {
  workload_.Park();
  v1::Request request;
  request.mutable_wait_ready()->set_parked(true);
  request.mutable_wait_ready()->set_timeout_ms(20000);
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_ready()) << r.DebugString();
}

TEST_F(OpsTest, WaitReadyParkedWaitsForARunningWorkloadToExit) {
  Conn conn = Connect();
  v1::Request request;
  request.mutable_wait_ready()->set_parked(true);
  request.mutable_wait_ready()->set_timeout_ms(20000);
  conn.Send(request);
  EXPECT_FALSE(Readable(conn.fd(), 200)) << "answered while the workload runs";
  workload_.Exit(WorkloadExitInfo{});
  v1::Response r;
  ASSERT_TRUE(conn.Read(&r));
  ASSERT_TRUE(r.has_ready()) << r.DebugString();
}

TEST_F(OpsTest, WaitReadyParkedTimesOutWhileTheWorkloadRuns) {
  v1::Request request;
  request.mutable_wait_ready()->set_parked(true);
  request.mutable_wait_ready()->set_timeout_ms(150);
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_error()) << r.DebugString();
  EXPECT_EQ(r.error().code(), kDeadlineExceeded);
  EXPECT_THAT(r.error().message(), HasSubstr("parked"));
}

TEST_F(OpsTest, RestoredStartsAParkedWorkloadAfterTheReseed) {
  workload_.Park();
  v1::Request request;
  request.mutable_restored()->set_entropy(std::string(32, '\x07'));
  request.mutable_restored()->set_generation(4);
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_restored()) << r.DebugString();
  EXPECT_EQ(workload_.start_parked_calls(), 1);
  EXPECT_FALSE(workload_.parked());
}

TEST_F(OpsTest, RestoredReportsAParkedWorkloadThatCannotStart) {
  workload_.Park("volume disk \"v0\" not found");
  v1::Request request;
  request.mutable_restored()->set_entropy(std::string(32, '\x07'));
  request.mutable_restored()->set_generation(5);
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_error()) << r.DebugString();
  EXPECT_EQ(r.error().code(), kFailedPrecondition);
  EXPECT_THAT(r.error().message(), HasSubstr("volume disk \"v0\" not found"));
}

TEST_F(OpsTest, WaitExitReturnsTheWorkloadStatus) {
  WorkloadExitInfo info;
  info.status.signaled = true;
  info.status.signal = 15;
  info.status.duration_us = 1234;
  info.restarts = 2;
  workload_.Exit(info);
  v1::Request request;
  request.mutable_wait_exit();
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_workload_exit()) << r.DebugString();
  EXPECT_EQ(r.workload_exit().status().signal(), 15);
  EXPECT_EQ(r.workload_exit().status().duration_us(), 1234u);
  EXPECT_EQ(r.workload_exit().restarts(), 2u);
}

TEST_F(OpsTest, RestoredReseedsSetsClockIdentityAndGeneration) {
  v1::Request request;
  auto* restored = request.mutable_restored();
  restored->set_entropy(std::string(32, '\x5a'));
  restored->set_wall_clock_ns(1700000000123456789);
  restored->set_vm_id("vm-42");
  restored->set_hostname("clone-7");
  restored->set_machine_id("0123456789abcdef0123456789abcdef");
  restored->set_generation(9);
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_restored()) << r.DebugString();
  EXPECT_EQ(r.restored().generation(), 9u);
  {
    std::lock_guard<std::mutex> lock(system_.mu);
    EXPECT_THAT(system_.calls, ElementsAre("entropy:32", "reseed", "clock:1700000000123456789",
                                           "hostname:clone-7"));
    EXPECT_EQ(system_.entropy, std::string(32, '\x5a'));
  }
  EXPECT_EQ(test_support::ReadFileOrDie(dir_.Join("etc/hostname")), "clone-7\n");
  EXPECT_EQ(test_support::ReadFileOrDie(dir_.Join("etc/machine-id")),
            "0123456789abcdef0123456789abcdef\n");
  EXPECT_EQ(test_support::ReadFileOrDie(dir_.Join("run/supermachine/vm-id")), "vm-42\n");
  EXPECT_EQ(test_support::ReadFileOrDie(dir_.Join("run/supermachine/generation")), "9\n");
  v1::Request ping;
  ping.mutable_ping();
  EXPECT_EQ(Call(ping).pong().generation(), 9u);
}

TEST_F(OpsTest, RestoredRejectsBadMachineIdBeforeChangingAnything) {
  v1::Request request;
  request.mutable_restored()->set_entropy(std::string(32, '\x01'));
  request.mutable_restored()->set_machine_id("NOT-HEX");
  request.mutable_restored()->set_generation(3);
  v1::Response r = Call(request);
  ASSERT_TRUE(r.has_error()) << r.DebugString();
  EXPECT_EQ(r.error().code(), kInvalidArgument);
  std::lock_guard<std::mutex> lock(system_.mu);
  EXPECT_TRUE(system_.calls.empty());
}

TEST_F(OpsTest, RestoredToleratesKernelWithoutReseedIoctl) {
  {
    std::lock_guard<std::mutex> lock(system_.mu);
    system_.reseed_result = -ENOTTY;
  }
  v1::Request request;
  request.mutable_restored()->set_entropy(std::string(32, '\x02'));
  request.mutable_restored()->set_generation(1);
  v1::Response r = Call(request);
  EXPECT_TRUE(r.has_restored()) << r.DebugString();
}

TEST_F(OpsTest, ShutdownAcksThenStopsTheWorkload) {
  v1::Request request;
  request.mutable_shutdown();
  v1::Response r = Call(request);
  EXPECT_TRUE(r.has_shutdown()) << r.DebugString();
  for (int i = 0; i < 100 && !workload_.shutdown_called(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(workload_.shutdown_called());
}

TEST_F(OpsTest, StopEndsRunningOperationsAndRunReturns) {
  Conn exec = Connect();
  v1::Request request;
  request.mutable_exec()->add_argv("sleep");
  request.mutable_exec()->add_argv("30");
  exec.Send(request);
  v1::Response started;
  ASSERT_TRUE(exec.Read(&started));
  ASSERT_TRUE(started.has_exec_started());
  Conn wait = Connect();
  v1::Request wait_exit;
  wait_exit.mutable_wait_exit();
  wait.Send(wait_exit);
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  run_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(::kill(started.exec_started().pid(), 0), -1);  // Killed and reaped.
}

TEST_F(OpsTest, ZeroLengthFrameGetsErrorAndServerKeepsServing) {
  Conn bad = Connect();
  bad.SendRaw(std::string("\0\0\0\0", 4));
  v1::Response error;
  ASSERT_TRUE(bad.Read(&error));
  ASSERT_TRUE(error.has_error()) << error.DebugString();
  EXPECT_EQ(error.error().code(), kInvalidArgument);
  v1::Request ping;
  ping.mutable_ping();
  EXPECT_TRUE(Call(ping).has_pong());
}

TEST_F(OpsTest, OversizeFrameGetsErrorWithoutBeingRead) {
  Conn bad = Connect();
  bad.SendRaw(std::string("\xff\xff\xff\xff", 4));
  v1::Response error;
  ASSERT_TRUE(bad.Read(&error));
  ASSERT_TRUE(error.has_error());
  EXPECT_THAT(error.error().message(), HasSubstr("limit"));
}

TEST_F(OpsTest, GarbagePayloadGetsError) {
  Conn bad = Connect();
  bad.SendRaw(std::string("\0\0\0\3\xff\xff\xff", 7));
  v1::Response error;
  ASSERT_TRUE(bad.Read(&error));
  ASSERT_TRUE(error.has_error());
  EXPECT_EQ(error.error().code(), kInvalidArgument);
}

TEST_F(OpsTest, TruncatedFrameThenCloseDoesNotHurtTheServer) {
  {
    Conn bad = Connect();
    bad.SendRaw(std::string("\0\0\0\x10" "abc", 7));
  }
  v1::Request ping;
  ping.mutable_ping();
  EXPECT_TRUE(Call(ping).has_pong());
}

TEST_F(OpsTest, UnknownOperationIsUnimplemented) {
  Conn conn = Connect();
  // Field 99 (length-delimited, empty): an operation from a newer host.
  conn.SendRaw(std::string("\0\0\0\3\x9a\x06\x00", 7));
  v1::Response r;
  ASSERT_TRUE(conn.Read(&r));
  ASSERT_TRUE(r.has_error()) << r.DebugString();
  EXPECT_EQ(r.error().code(), kUnimplemented);
  EXPECT_THAT(r.error().message(), HasSubstr("test-1.2.3"));
}

TEST_F(OpsTest, UnexpectedMessageInsteadOfFileChunkGetsError) {
  Conn conn = Connect();
  v1::Request request;
  request.mutable_write_file()->set_path(dir_.Join("x"));
  conn.Send(request);
  conn.SendRaw(std::string("\0\0\0\2\x0f\x00", 6));  // Invalid wire type: not a FileChunk.
  v1::Response r;
  ASSERT_TRUE(conn.Read(&r));
  ASSERT_TRUE(r.has_error()) << r.DebugString();
  EXPECT_EQ(r.error().code(), kInvalidArgument);
}

}  // namespace
}  // namespace supermachine::agent::testing
