// File: exec_test.cc
// StartExec / ExecSession / RunCommand against a fake agent that plays a process: output
// chunks, stdin echo, resize and signal frames, exits by code and by signal, deadlines.
#include <signal.h>

#include <string>

#include "daemon/agent/agent_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/agent_client/fake_agent.h"

namespace supermachine::agent {
namespace {

using ::supermachine::test_support::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ErrorResponse;
using testing::FakeAgent;
using testing::Recv;
using testing::Send;

absl::Time Soon() { return absl::Now() + absl::Seconds(10); }

AgentClient ClientFor(const TempDir& dir) {
  return AgentClient(std::make_unique<UnixDialer>(dir.Join("a.sock")));
}

void Started(int fd, int pid) {
  v1::Response r;
  r.mutable_exec_started()->set_pid(pid);
  Send(fd, r);
}

void Output(int fd, bool err, const std::string& data) {
  v1::ExecOutput o;
  if (err) {
    o.set_stderr(data);
  } else {
    o.set_stdout(data);
  }
  Send(fd, o);
}

void ExitCode(int fd, int code) {
  v1::ExecOutput o;
  o.mutable_exit()->set_exit_code(code);
  o.mutable_exit()->set_duration_us(1234);
  Send(fd, o);
}

void ExitSignal(int fd, int sig, bool timed_out) {
  v1::ExecOutput o;
  o.mutable_exit()->set_signal(sig);
  o.mutable_exit()->set_timed_out(timed_out);
  Send(fd, o);
}

TEST(AgentExec, RequestCarriesEveryOption) {
  TempDir dir;
  v1::ExecRequest seen;
  FakeAgent fake(dir.Join("a.sock"), [&](int fd, const v1::Request& req) {
    seen = req.exec();
    Started(fd, 42);
    ExitCode(fd, 0);
  });
  ExecOptions options{.argv = {"ls", "-l"},
                      .env = {"A=1"},
                      .replace_env = true,
                      .cwd = "/srv",
                      .user = "nobody",
                      .tty = true,
                      .window = {.rows = 50, .cols = 132},
                      .timeout = absl::Microseconds(1500),
                      .attach_stdin = true};

  auto session = ClientFor(dir).StartExec(options, Soon());

  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ((*session)->pid(), 42);
  EXPECT_THAT(seen.argv(), ElementsAre("ls", "-l"));
  EXPECT_THAT(seen.env(), ElementsAre("A=1"));
  EXPECT_TRUE(seen.replace_env());
  EXPECT_EQ(seen.cwd(), "/srv");
  EXPECT_EQ(seen.user(), "nobody");
  EXPECT_TRUE(seen.tty());
  EXPECT_EQ(seen.window().rows(), 50u);
  EXPECT_EQ(seen.window().cols(), 132u);
  EXPECT_EQ(seen.timeout_ms(), 2u);  // Rounded up: 1.5 ms must not become "no timeout".
  EXPECT_TRUE(seen.stdin());
}

TEST(AgentExec, RunCommandCollectsStdoutStderrAndExitCode) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    Started(fd, 1);
    Output(fd, false, "hi");
    Output(fd, true, "warn");
    Output(fd, false, "\n");
    ExitCode(fd, 7);
  });

  auto r = ClientFor(dir).RunCommand({.argv = {"sh", "-c", "exit 7"}}, "", Soon());

  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_data, "hi\n");
  EXPECT_EQ(r->stderr_data, "warn");
  EXPECT_EQ(r->exit.ToString(), "exited 7");
  EXPECT_EQ(r->exit.duration, absl::Microseconds(1234));
}

TEST(AgentExec, KilledBySignalMapsToShellCode) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    Started(fd, 1);
    ExitSignal(fd, SIGKILL, true);
  });

  auto r = ClientFor(dir).RunCommand({.argv = {"sleep", "99"}}, "", Soon());

  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->exit.signaled);
  EXPECT_TRUE(r->exit.timed_out);
  EXPECT_EQ(r->exit.ShellCode(), 137);
  EXPECT_EQ(r->exit.ToString(), "killed by signal 9 (timed out)");
}

TEST(AgentExec, RunCommandPipesStdinThroughWhileReading) {
  TempDir dir;
  // A `cat`: echoes every stdin chunk, exits 0 at stdin EOF. 8 MiB exceeds every socket
  // buffer, so this only passes if stdin is written while stdout is read.
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request& req) {
    ASSERT_TRUE(req.exec().stdin());
    Started(fd, 1);
    v1::ExecInput in;
    while (Recv(fd, &in) && !in.stdin_eof()) {
      Output(fd, false, in.stdin());
    }
    ExitCode(fd, 0);
  });
  std::string input(8 << 20, '\0');
  for (size_t i = 0; i < input.size(); ++i) {
    input[i] = static_cast<char>(i * 7 + i / 4096);
  }

  auto r = ClientFor(dir).RunCommand({.argv = {"cat"}, .attach_stdin = true}, input, Soon(),
                                     {.max_output_bytes = 64 << 20});

  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_data.size(), input.size());
  EXPECT_TRUE(r->stdout_data == input);
}

TEST(AgentExec, RunCommandTruncatesOutputPastTheLimitButReadsToTheExit) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    Started(fd, 1);
    Output(fd, false, "0123456789");
    Output(fd, false, "abcdef");
    ExitCode(fd, 3);
  });

  auto r = ClientFor(dir).RunCommand({.argv = {"yes"}}, "", Soon(), {.max_output_bytes = 12});

  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_data, "0123456789ab");
  EXPECT_TRUE(r->stdout_truncated);
  EXPECT_EQ(r->exit.code, 3);
}

TEST(AgentExec, RunCommandPastTheDeadlineSendsSigkill) {
  TempDir dir;
  std::atomic<int> signal_seen{0};
  absl::Status status;
  {
    FakeAgent fake(dir.Join("a.sock"), [&](int fd, const v1::Request&) {
      Started(fd, 1);
      v1::ExecInput in;
      while (Recv(fd, &in)) {
        if (in.input_case() == v1::ExecInput::kSignal) {
          signal_seen = in.signal();
        }
      }
    });

    status = ClientFor(dir)
                 .RunCommand({.argv = {"sleep", "99"}}, "", absl::Now() + absl::Milliseconds(200))
                 .status();
  }  // Joins the handler: it has seen everything the client sent.

  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_EQ(signal_seen.load(), SIGKILL);
}

TEST(AgentExec, SessionSendsResizeSignalStdinAndEof) {
  TempDir dir;
  std::vector<std::string> log;
  FakeAgent fake(dir.Join("a.sock"), [&](int fd, const v1::Request&) {
    Started(fd, 9);
    v1::ExecInput in;
    while (Recv(fd, &in)) {
      switch (in.input_case()) {
        case v1::ExecInput::kResize:
          log.push_back("resize " + std::to_string(in.resize().rows()) + "x" +
                        std::to_string(in.resize().cols()));
          break;
        case v1::ExecInput::kSignal:
          log.push_back("signal " + std::to_string(in.signal()));
          break;
        case v1::ExecInput::kStdin:
          log.push_back("stdin " + in.stdin());
          break;
        case v1::ExecInput::kStdinEof:
          log.push_back("eof");
          ExitSignal(fd, SIGTERM, false);
          return;
        case v1::ExecInput::INPUT_NOT_SET:
          break;
      }
    }
  });
  auto session = ClientFor(dir).StartExec({.argv = {"sh"}, .tty = true, .attach_stdin = true},
                                          Soon());
  ASSERT_TRUE(session.ok()) << session.status();

  ASSERT_TRUE((*session)->Resize({.rows = 40, .cols = 100}, Soon()).ok());
  ASSERT_TRUE((*session)->WriteStdin("ls\n", Soon()).ok());
  ASSERT_TRUE((*session)->Signal(SIGTERM, Soon()).ok());
  ASSERT_TRUE((*session)->CloseStdin(Soon()).ok());
  auto ev = (*session)->Read(Soon());

  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ(ev->kind, ExecEvent::Kind::kExit);
  EXPECT_EQ(ev->exit.signal, SIGTERM);
  EXPECT_TRUE((*session)->finished());
  EXPECT_THAT(log, ElementsAre("resize 40x100", "stdin ls\n", "signal 15", "eof"));
}

TEST(AgentExec, WriteStdinWithoutAttachedStdinIsFailedPrecondition) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    Started(fd, 1);
    ExitCode(fd, 0);
  });
  auto session = ClientFor(dir).StartExec({.argv = {"true"}}, Soon());
  ASSERT_TRUE(session.ok()) << session.status();

  auto st = (*session)->WriteStdin("x", Soon());

  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
}

TEST(AgentExec, CommandNotFoundKeepsTheAgentsCode) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    Send(fd, ErrorResponse(static_cast<int>(absl::StatusCode::kNotFound),
                           "exec nosuch: not found in PATH"));
  });

  auto session = ClientFor(dir).StartExec({.argv = {"nosuch"}}, Soon());

  EXPECT_TRUE(absl::IsNotFound(session.status())) << session.status();
  EXPECT_THAT(session.status().message(), HasSubstr("exec [nosuch]"));
}

TEST(AgentExec, ConnectionLostBeforeTheExitIsUnavailable) {
  TempDir dir;
  FakeAgent fake(dir.Join("a.sock"), [](int fd, const v1::Request&) {
    Started(fd, 1);
    Output(fd, false, "partial");
  });

  auto r = ClientFor(dir).RunCommand({.argv = {"x"}}, "", Soon());

  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("without an exit status"));
}

TEST(AgentExec, EmptyArgvIsInvalidArgument) {
  TempDir dir;

  auto session = ClientFor(dir).StartExec({}, Soon());

  EXPECT_TRUE(absl::IsInvalidArgument(session.status())) << session.status();
}

}  // namespace
}  // namespace supermachine::agent
