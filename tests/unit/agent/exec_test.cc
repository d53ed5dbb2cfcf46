// File: tests/unit/agent/exec_test.cc
// The exec operation end to end against the in-process server: exit codes, signals, stdin and
// stdout streaming under backpressure, concurrency, tty, timeout, signal forwarding, env, cwd,
// user, and what happens when the host goes away.
#include <openssl/evp.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "guest-agent/protocol/frame.h"
#include "tests/unit/agent/agent_test_client.h"

namespace supermachine::agent::testing {
namespace {

using ::testing::HasSubstr;

std::string Sha256(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), len);
}

bool ProcessGone(pid_t pid) {
  for (int i = 0; i < 250; ++i) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

using ExecTest = AgentServerTest;

TEST_F(ExecTest, EchoPrintsHiAndExitsZero) {
  ExecResult r = Exec(Command({"echo", "hi"}));
  ASSERT_TRUE(r.started.has_exec_started()) << r.started.DebugString();
  EXPECT_GT(r.started.exec_started().pid(), 0);
  EXPECT_EQ(r.stdout_data, "hi\n");
  ASSERT_TRUE(r.exit.has_value());
  EXPECT_EQ(r.exit->exit_code(), 0);
  EXPECT_FALSE(r.exit->timed_out());
  EXPECT_GT(r.exit->duration_us(), 0u);
  EXPECT_GT(r.exit->peak_rss_kib(), 0u);
}

TEST_F(ExecTest, ReportsExitCode) {
  ExecResult r = Exec(Command({"sh", "-c", "exit 7"}));
  ASSERT_TRUE(r.exit.has_value());
  EXPECT_EQ(r.exit->how_case(), v1::ExecExit::kExitCode);
  EXPECT_EQ(r.exit->exit_code(), 7);
}

TEST_F(ExecTest, ReportsKillingSignal) {
  ExecResult r = Exec(Command({"sh", "-c", "kill -TERM $$"}));
  ASSERT_TRUE(r.exit.has_value());
  EXPECT_EQ(r.exit->how_case(), v1::ExecExit::kSignal);
  EXPECT_EQ(r.exit->signal(), SIGTERM);
}

TEST_F(ExecTest, SeparatesStdoutAndStderr) {
  ExecResult r = Exec(Command({"sh", "-c", "echo out; echo err >&2"}));
  EXPECT_EQ(r.stdout_data, "out\n");
  EXPECT_EQ(r.stderr_data, "err\n");
}

TEST_F(ExecTest, StreamsTwentyFourMibThroughCatUnchanged) {
  std::string input(24u << 20, '\0');
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= input.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&input[i], &v, 8);
  }
  v1::ExecRequest exec = Command({"cat"});
  exec.set_stdin(true);
  ExecResult r = Exec(exec, input);
  ASSERT_TRUE(r.exit.has_value());
  EXPECT_EQ(r.exit->exit_code(), 0);
  EXPECT_EQ(r.stdout_data.size(), input.size());
  EXPECT_TRUE(Sha256(r.stdout_data) == Sha256(input)) << "sha256 of the output differs";
}

TEST_F(ExecTest, StdinClosedByTheCommandIsNotFatal) {
  v1::ExecRequest exec = Command({"head", "-c", "1"});
  exec.set_stdin(true);
  ExecResult r = Exec(exec, std::string(8u << 20, 'q'));
  ASSERT_TRUE(r.exit.has_value());
  EXPECT_EQ(r.exit->exit_code(), 0);
  EXPECT_EQ(r.stdout_data, "q");
}

TEST_F(ExecTest, WithoutStdinTheCommandReadsDevNull) {
  ExecResult r = Exec(Command({"sh", "-c", "cat; echo done"}));
  ASSERT_TRUE(r.exit.has_value());
  EXPECT_EQ(r.stdout_data, "done\n");
}

TEST_F(ExecTest, FiftyConcurrentExecsEachGetTheirOwnOutput) {
  constexpr int kExecs = 50;
  std::vector<std::thread> threads;
  threads.reserve(kExecs);
  std::vector<ExecResult> results(kExecs);
  for (int i = 0; i < kExecs; ++i) {
    threads.emplace_back([this, i, &results] {
      results[i] = Exec(Command({"sh", "-c", "sleep 0.2; echo $0", std::to_string(i)}));
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int i = 0; i < kExecs; ++i) {
    ASSERT_TRUE(results[i].exit.has_value()) << "exec " << i;
    EXPECT_EQ(results[i].exit->exit_code(), 0) << "exec " << i;
    EXPECT_EQ(results[i].stdout_data, std::to_string(i) + "\n") << "exec " << i;
  }
}

TEST_F(ExecTest, TtyExecSeesTerminalAndInitialWindowSize) {
  v1::ExecRequest exec = Command({"sh", "-c", "test -t 0 && test -t 1 && echo is-tty; stty size"});
  exec.set_tty(true);
  exec.mutable_window()->set_rows(33);
  exec.mutable_window()->set_cols(101);
  ExecResult r = Exec(exec);
  ASSERT_TRUE(r.exit.has_value());
  EXPECT_EQ(r.exit->exit_code(), 0);
  EXPECT_EQ(r.stdout_data, "is-tty\r\n33 101\r\n");
  EXPECT_EQ(r.stderr_data, "");
}

TEST_F(ExecTest, TtyResizeReachesTheTerminal) {
  v1::ExecRequest exec = Command({"sh", "-c", "read line; stty size"});
  exec.set_tty(true);
  exec.set_stdin(true);
  exec.mutable_window()->set_rows(24);
  exec.mutable_window()->set_cols(80);
  Conn conn = Connect();
  v1::Request request;
  *request.mutable_exec() = exec;
  conn.Send(request);
  v1::Response started;
  ASSERT_TRUE(conn.Read(&started));
  ASSERT_TRUE(started.has_exec_started()) << started.DebugString();
  v1::ExecInput resize;
  resize.mutable_resize()->set_rows(50);
  resize.mutable_resize()->set_cols(132);
  conn.Send(resize);
  v1::ExecInput line;
  line.set_stdin("go\n");
  conn.Send(line);
  std::string output;
  v1::ExecOutput out;
  while (conn.Read(&out) && !out.has_exit()) {
    output += out.stdout();
  }
  ASSERT_TRUE(out.has_exit());
  EXPECT_EQ(out.exit().exit_code(), 0);
  EXPECT_THAT(output, HasSubstr("50 132"));
}

TEST_F(ExecTest, TimeoutKillsTheProcessGroup) {
  v1::ExecRequest exec = Command({"sh", "-c", "sleep 30 & sleep 30; echo unreachable"});
  exec.set_timeout_ms(300);
  const auto start = std::chrono::steady_clock::now();
  ExecResult r = Exec(exec);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.exit.has_value());
  EXPECT_TRUE(r.exit->timed_out());
  EXPECT_EQ(r.exit->signal(), SIGKILL);
  EXPECT_EQ(r.stdout_data, "");
  // The background sleep was in the group too: nothing kept the pipes open for 30 s.
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST_F(ExecTest, SignalIsForwardedToTheProcessGroup) {
  Conn conn = Connect();
  v1::Request request;
  *request.mutable_exec() = Command({"sleep", "30"});
  conn.Send(request);
  v1::Response started;
  ASSERT_TRUE(conn.Read(&started));
  ASSERT_TRUE(started.has_exec_started());
  v1::ExecInput sig;
  sig.set_signal(SIGUSR1);
  conn.Send(sig);
  v1::ExecOutput out;
  while (conn.Read(&out) && !out.has_exit()) {
  }
  ASSERT_TRUE(out.has_exit());
  EXPECT_EQ(out.exit().signal(), SIGUSR1);
  EXPECT_FALSE(out.exit().timed_out());
}

TEST_F(ExecTest, CommandInheritsNoAgentFds) {
  // Another live exec holds pipes, a socket and an eventfd in the agent meanwhile.
  Conn other = Connect();
  v1::Request request;
  *request.mutable_exec() = Command({"sleep", "30"});
  other.Send(request);
  v1::Response started;
  ASSERT_TRUE(other.Read(&started));
  ASSERT_TRUE(started.has_exec_started());
  // ls opens the directory it lists as fd 3; anything above is leaked from the agent.
  ExecResult r = Exec(Command({"ls", "/proc/self/fd"}));
  EXPECT_EQ(r.stdout_data, "0\n1\n2\n3\n");
}

TEST_F(ExecTest, MissingCommandIsNotFoundBeforeStart) {
  ExecResult r = Exec(Command({"no-such-command-xyz"}));
  ASSERT_TRUE(r.started.has_error()) << r.started.DebugString();
  EXPECT_EQ(r.started.error().code(), 5);  // NOT_FOUND
  EXPECT_THAT(r.started.error().message(), HasSubstr("no-such-command-xyz"));
}

TEST_F(ExecTest, MissingCwdIsReportedWithThePath) {
  v1::ExecRequest exec = Command({"true"});
  exec.set_cwd("/no/such/dir");
  ExecResult r = Exec(exec);
  ASSERT_TRUE(r.started.has_error()) << r.started.DebugString();
  EXPECT_EQ(r.started.error().code(), 5);
  EXPECT_THAT(r.started.error().message(), HasSubstr("chdir /no/such/dir"));
}

TEST_F(ExecTest, EmptyArgvIsInvalidArgument) {
  ExecResult r = Exec(v1::ExecRequest());
  ASSERT_TRUE(r.started.has_error());
  EXPECT_EQ(r.started.error().code(), 3);
}

TEST_F(ExecTest, CwdFromRequest) {
  v1::ExecRequest exec = Command({"pwd"});
  exec.set_cwd(dir_.path());
  ExecResult r = Exec(exec);
  EXPECT_EQ(r.stdout_data, dir_.path() + "\n");
}

TEST_F(ExecTest, RequestEnvIsMergedOverWorkloadEnv) {
  v1::ExecRequest exec = Command({"sh", "-c", "echo $FROM_WORKLOAD $EXTRA"});
  exec.add_env("EXTRA=added");
  ExecResult r = Exec(exec);
  EXPECT_EQ(r.stdout_data, "yes added\n");
}

TEST_F(ExecTest, RequestEnvOverridesSameKey) {
  v1::ExecRequest exec = Command({"sh", "-c", "echo $FROM_WORKLOAD"});
  exec.add_env("FROM_WORKLOAD=overridden");
  ExecResult r = Exec(exec);
  EXPECT_EQ(r.stdout_data, "overridden\n");
}

TEST_F(ExecTest, ReplaceEnvDropsWorkloadEnv) {
  v1::ExecRequest exec = Command({"/bin/sh", "-c", "echo \"[$FROM_WORKLOAD]\" $ONLY"});
  exec.add_env("ONLY=this");
  exec.set_replace_env(true);
  ExecResult r = Exec(exec);
  EXPECT_EQ(r.stdout_data, "[] this\n");
}

TEST_F(ExecTest, UserSpecSetsUidGidAndGroups) {
  if (::geteuid() != 0) {
    FAIL() << "switching user needs root (the guest agent always is): run the tests as root";
  }
  test_support::WriteFileOrDie(dir_.Join("etc/passwd"),
                               "root:x:0:0:root:/root:/bin/sh\n"
                               "app:x:4321:4321::/home/app:/bin/sh\n");
  test_support::WriteFileOrDie(dir_.Join("etc/group"), "app:x:4321:\nextra:x:5555:app\n");
  v1::ExecRequest exec = Command({"sh", "-c", "echo $(id -u) $(id -g) $(id -G) $HOME"});
  exec.set_user("app");
  ExecResult r = Exec(exec);
  ASSERT_TRUE(r.exit.has_value()) << r.started.DebugString();
  EXPECT_EQ(r.stdout_data, "4321 4321 4321 5555 /home/app\n");
}

TEST_F(ExecTest, UnknownUserIsNotFound) {
  v1::ExecRequest exec = Command({"true"});
  exec.set_user("ghost");
  ExecResult r = Exec(exec);
  ASSERT_TRUE(r.started.has_error());
  EXPECT_EQ(r.started.error().code(), 5);
  EXPECT_THAT(r.started.error().message(), HasSubstr("ghost"));
}

TEST_F(ExecTest, HostHangupKillsTheCommand) {
  Conn conn = Connect();
  v1::Request request;
  *request.mutable_exec() = Command({"sleep", "30"});
  conn.Send(request);
  v1::Response started;
  ASSERT_TRUE(conn.Read(&started));
  ASSERT_TRUE(started.has_exec_started());
  conn.Close();
  EXPECT_TRUE(ProcessGone(started.exec_started().pid()));
}

TEST_F(ExecTest, MalformedInputEndsTheStreamAndKillsTheCommand) {
  Conn conn = Connect();
  v1::Request request;
  *request.mutable_exec() = Command({"sleep", "30"});
  conn.Send(request);
  v1::Response started;
  ASSERT_TRUE(conn.Read(&started));
  ASSERT_TRUE(started.has_exec_started());
  conn.SendRaw(std::string("\0\0\0\0", 4));  // Zero-length frame.
  v1::ExecOutput out;
  EXPECT_NE(protocol::ReadMessage(conn.fd(), &out).result, protocol::ReadResult::kOk);
  EXPECT_TRUE(ProcessGone(started.exec_started().pid()));
}

TEST_F(ExecTest, HalfCloseActsAsStdinEof) {
  v1::ExecRequest exec = Command({"cat"});
  exec.set_stdin(true);
  Conn conn = Connect();
  v1::Request request;
  *request.mutable_exec() = exec;
  conn.Send(request);
  v1::Response started;
  ASSERT_TRUE(conn.Read(&started));
  v1::ExecInput input;
  input.set_stdin("abc");
  conn.Send(input);
  conn.ShutdownWrite();
  std::string output;
  v1::ExecOutput out;
  while (conn.Read(&out) && !out.has_exit()) {
    output += out.stdout();
  }
  ASSERT_TRUE(out.has_exit());
  EXPECT_EQ(out.exit().exit_code(), 0);
  EXPECT_EQ(output, "abc");
}

}  // namespace
}  // namespace supermachine::agent::testing
