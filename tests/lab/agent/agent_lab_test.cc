// File: agent_lab_test.cc
// End to end: the host agent client (daemon/agent) ↔ the worker's hybrid vsock ↔ the real
// guest agent as PID 1 over a busybox root. Runs inside the KVM lab (tests/lab/run). Every
// check runs twice: on a booted guest (Booted/...) and on a guest restored from its snapshot
// (Restored/...). One guest of each kind serves the whole suite (every boot costs seconds of
// emulated time); each test uses its own files, ports and processes in it.
#include <openssl/evp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lab/agent/agent_vm.h"
#include "worker/base/child_process.h"

namespace supermachine::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

absl::Time In(absl::Duration d) { return absl::Now() + d; }

// Deterministic bytes (a fixed-seed PRNG: the test needs incompressible data, not secrecy).
std::string PseudoRandom(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 4) {
    uint32_t v = gen();
    for (size_t j = 0; j < 4 && i + j < n; ++j) {
      s[i + j] = static_cast<char>(v >> (8 * j));
    }
  }
  return s;
}

// Incremental SHA-256 (OpenSSL EVP), hex digest.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const std::string& data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
  std::string HexDigest() {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, d, &n);
    std::string out;
    for (unsigned int i = 0; i < n; ++i) {
      absl::StrAppend(&out, absl::Hex(d[i], absl::kZeroPad2));
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Every check runs on a booted guest and on one restored from its snapshot (Firecracker's
// booted/restored fixtures): a restored agent must serve exactly like a fresh one.
enum class Mode { kBooted, kRestored };

// The suite's guests, created on first use (a filter selecting only one mode boots only what
// it needs) and shut down at the end. gtest's pattern for expensive shared fixtures.
struct SharedVms {
  std::string work_dir;
  std::string kernel_dir;
  std::unique_ptr<lab::AgentVm> booted;
  std::unique_ptr<lab::AgentVm> restored;
  std::string booted_error;  // Set when the boot was tried and failed.
  std::string restored_error;
  bool booted_tried = false;
  bool restored_tried = false;
  // Set when a guest stopped answering during a test: later tests on it fail at once instead
  // of each waiting out its deadlines.
  std::string booted_broken;
  std::string restored_broken;
};

class AgentLab : public ::testing::TestWithParam<Mode> {
 protected:
  static void SetUpTestSuite() {
    shared_ = new SharedVms();
    shared_->work_dir =
        absl::StrCat(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", "/sm-agent-lab-", getpid());
    fs::create_directories(shared_->work_dir);
    shared_->kernel_dir = lab::KernelDir(SM_SOURCE_DIR);
  }

  static void TearDownTestSuite() {
    for (auto* vm : {&shared_->restored, &shared_->booted}) {
      if (*vm == nullptr) {
        continue;
      }
      auto st = (*vm)->Shutdown(absl::Seconds(60));
      EXPECT_TRUE(st.ok()) << st.status() << (*vm)->Diagnostics();
      if (st.ok()) {
        EXPECT_TRUE(st->success()) << st->ToString() << (*vm)->Diagnostics();
      }
      vm->reset();
    }
    fs::remove_all(shared_->work_dir);
    delete shared_;
    shared_ = nullptr;
  }

  static lab::AgentVmOptions Options(const std::string& name) {
    return {.work_dir = shared_->work_dir,
            .name = name,
            .worker_bin = SM_WORKER_BIN,
            .agent_bin = SM_GUEST_AGENT_BIN,
            .kernel = shared_->kernel_dir + "/vmlinux"};
  }

  static std::string EnsureBooted() {
    SharedVms& s = *shared_;
    if (!s.booted_tried) {
      s.booted_tried = true;
      if (s.kernel_dir.empty()) {
        s.booted_error =
            "guest kernel not built: run kernel/build.sh (kernel/README.md) or set SM_KERNEL_DIR";
      } else if (!fs::exists("/dev/kvm")) {
        s.booted_error = "no /dev/kvm: this test must run via tests/lab/run";
      } else if (auto vm = lab::AgentVm::Boot(Options("booted")); vm.ok()) {
        s.booted = std::move(*vm);
      } else {
        s.booted_error = vm.status().ToString();
      }
    }
    return s.booted_error;
  }

  // Snapshots the booted guest (which then resumes), restores a second worker from it and
  // tells its agent, as the daemon will: Restored with generation 1.
  static std::string EnsureRestored() {
    SharedVms& s = *shared_;
    if (!s.restored_tried) {
      s.restored_tried = true;
      if (std::string err = EnsureBooted(); !err.empty()) {
        s.restored_error = "no booted guest to snapshot: " + err;
        return s.restored_error;
      }
      const std::string snap = s.work_dir + "/snap";
      if (absl::Status st = s.booted->Snapshot(snap); !st.ok()) {
        s.restored_error = "snapshot: " + st.ToString() + "\n" + s.booted->Diagnostics();
        return s.restored_error;
      }
      auto vm = lab::AgentVm::Restore(Options("restored"), snap);
      if (!vm.ok()) {
        s.restored_error = "restore: " + vm.status().ToString();
        return s.restored_error;
      }
      auto gen = (*vm)->client().Restored({.entropy = std::string(32, '\x11'),
                                           .wall_clock = absl::Now(),
                                           .vm_id = "restored",
                                           .generation = 1},
                                          In(absl::Seconds(60)));
      if (!gen.ok()) {
        s.restored_error = "restored hook: " + gen.status().ToString() + "\n" + (*vm)->Diagnostics();
        return s.restored_error;
      }
      s.restored = std::move(*vm);
    }
    return s.restored_error;
  }

  std::string& Broken() {
    return GetParam() == Mode::kBooted ? shared_->booted_broken : shared_->restored_broken;
  }

  void SetUp() override {
    if (GetParam() == Mode::kBooted) {
      ASSERT_EQ(EnsureBooted(), "") << "the suite's guest did not boot";
    } else {
      ASSERT_EQ(EnsureRestored(), "") << "the suite's restored guest is not up";
    }
    ASSERT_EQ(Broken(), "") << "the guest stopped answering in an earlier test";
  }

  void TearDown() override {
    lab::AgentVm* v = GetParam() == Mode::kBooted ? shared_->booted.get() : shared_->restored.get();
    if (HasFailure() && v != nullptr) {
      std::cerr << v->Diagnostics();
      // A quick exec tells a failed check from a guest that no longer serves at all.
      auto probe = v->client().RunCommand({.argv = {"true"}}, "", In(absl::Seconds(20)));
      if (!probe.ok()) {
        Broken() = probe.status().ToString();
      }
    }
  }

  lab::AgentVm& vm() {
    return GetParam() == Mode::kBooted ? *shared_->booted : *shared_->restored;
  }
  const AgentClient& client() { return vm().client(); }

  CommandResult Run(std::vector<std::string> argv, absl::Duration timeout = absl::Seconds(120)) {
    auto r = client().RunCommand({.argv = std::move(argv)}, "", In(timeout));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : CommandResult{};
  }

  static SharedVms* shared_;
};

SharedVms* AgentLab::shared_ = nullptr;

TEST_P(AgentLab, PingAnswersWithVersionAndGeneration) {
  auto pong = client().Ping(In(absl::Seconds(30)));

  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_FALSE(pong->agent_version.empty());
  EXPECT_GT(pong->uptime_seconds, 0.0);
  // 0 after a cold boot; the restored guest acknowledged generation 1 in the fixture.
  EXPECT_EQ(pong->generation, GetParam() == Mode::kBooted ? 0u : 1u);
}

TEST_P(AgentLab, EchoHiPrintsHiAndExitsZero) {
  CommandResult r = Run({"echo", "hi"});

  EXPECT_EQ(r.stdout_data, "hi\n");
  EXPECT_EQ(r.stderr_data, "");
  EXPECT_EQ(r.exit.ToString(), "exited 0");
}

TEST_P(AgentLab, ExitCodeSevenIsReported) {
  CommandResult r = Run({"sh", "-c", "echo err >&2; exit 7"});

  EXPECT_EQ(r.exit.ToString(), "exited 7");
  EXPECT_EQ(r.stderr_data, "err\n");
}

TEST_P(AgentLab, DeathBySignalIsReported) {
  CommandResult r = Run({"sh", "-c", "kill -TERM $$"});

  EXPECT_TRUE(r.exit.signaled) << r.exit.ToString();
  EXPECT_EQ(r.exit.signal, SIGTERM);
  EXPECT_EQ(r.exit.ShellCode(), 128 + SIGTERM);
}

TEST_P(AgentLab, HostSignalReachesTheProcess) {
  auto s = client().StartExec({.argv = {"sleep", "600"}}, In(absl::Seconds(60)));
  ASSERT_TRUE(s.ok()) << s.status();

  ASSERT_TRUE((*s)->Signal(SIGKILL, In(absl::Seconds(30))).ok());
  auto ev = (*s)->Read(In(absl::Seconds(60)));

  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ(ev->exit.ToString(), "killed by signal 9");
}

TEST_P(AgentLab, UnknownCommandIsNotFound) {
  auto s = client().StartExec({.argv = {"/bin/no-such-command"}}, In(absl::Seconds(60)));

  // Either refused up front, or started and exited 127 (the shell convention): both say so.
  if (s.ok()) {
    auto ev = (*s)->Read(In(absl::Seconds(60)));
    while (ev.ok() && ev->kind != ExecEvent::Kind::kExit) {
      ev = (*s)->Read(In(absl::Seconds(60)));
    }
    ASSERT_TRUE(ev.ok()) << ev.status();
    EXPECT_EQ(ev->exit.code, 127);
  } else {
    EXPECT_TRUE(absl::IsNotFound(s.status())) << s.status();
  }
}

// 100 MiB (SM_AGENT_LAB_STDIN_MIB) through `cat` and back; both directions stream at once.
TEST_P(AgentLab, StdinThroughCatKeepsEveryByte) {
  const char* env = getenv("SM_AGENT_LAB_STDIN_MIB");
  const size_t total = (env ? std::stoul(env) : 100) << 20;
  auto s = client().StartExec({.argv = {"cat"}, .attach_stdin = true}, In(absl::Seconds(60)));
  ASSERT_TRUE(s.ok()) << s.status();
  ExecSession* session = s->get();
  Sha256 in_hash;
  std::atomic<bool> write_ok{true};
  std::thread feeder([&] {
    const std::string block = PseudoRandom(1 << 20, 42);
    for (size_t sent = 0; sent < total; sent += block.size()) {
      // Vary each MiB so a dropped or repeated chunk changes the digest.
      std::string chunk = block;
      std::memcpy(chunk.data(), &sent, sizeof(sent));
      in_hash.Update(chunk);
      if (!session->WriteStdin(chunk, In(absl::Seconds(300))).ok()) {
        write_ok = false;
        return;
      }
    }
    write_ok = session->CloseStdin(In(absl::Seconds(60))).ok();
  });
  Sha256 out_hash;
  size_t received = 0;
  ExitInfo exit;
  absl::Status read_status;
  while (true) {
    auto ev = session->Read(In(absl::Seconds(300)));
    if (!ev.ok()) {
      read_status = ev.status();
      session->Abort();
      break;
    }
    if (ev->kind == ExecEvent::Kind::kExit) {
      exit = ev->exit;
      break;
    }
    out_hash.Update(ev->data);
    received += ev->data.size();
  }
  feeder.join();

  ASSERT_TRUE(read_status.ok()) << read_status;
  EXPECT_TRUE(write_ok.load());
  EXPECT_EQ(received, total);
  EXPECT_EQ(out_hash.HexDigest(), in_hash.HexDigest());
  EXPECT_EQ(exit.ToString(), "exited 0");
}

TEST_P(AgentLab, FiftyConcurrentExecsEachGetTheirOwnOutput) {
  constexpr int kExecs = 50;
  std::vector<std::thread> threads;
  threads.reserve(kExecs);
  std::vector<std::string> outputs(kExecs);
  std::vector<std::string> errors(kExecs);
  for (int i = 0; i < kExecs; ++i) {
    threads.emplace_back([&, i] {
      auto r = client().RunCommand({.argv = {"sh", "-c", absl::StrCat("sleep 1; echo ", i)}}, "",
                                   In(absl::Seconds(300)));
      if (!r.ok()) {
        errors[i] = r.status().ToString();
      } else {
        outputs[i] = absl::StrCat(r->stdout_data, r->exit.ToString());
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }

  for (int i = 0; i < kExecs; ++i) {
    EXPECT_EQ(errors[i], "") << "exec " << i;
    EXPECT_EQ(outputs[i], absl::StrCat(i, "\nexited 0")) << "exec " << i;
  }
}

TEST_P(AgentLab, TtyExecSeesATerminalAndItsResize) {
  // Prints its terminal and size, waits for a line, prints the size again.
  auto s = client().StartExec(
      {.argv = {"sh", "-c", "tty; stty size; read line; stty size; exit 3"},
       .tty = true,
       .window = {.rows = 30, .cols = 100},
       .attach_stdin = true},
      In(absl::Seconds(60)));
  ASSERT_TRUE(s.ok()) << s.status();
  std::string out;
  while (out.find("30 100") == std::string::npos) {
    auto ev = (*s)->Read(In(absl::Seconds(60)));
    ASSERT_TRUE(ev.ok()) << ev.status() << " output so far: " << out;
    ASSERT_NE(ev->kind, ExecEvent::Kind::kExit) << out;
    out += ev->data;
  }

  ASSERT_TRUE((*s)->Resize({.rows = 50, .cols = 132}, In(absl::Seconds(30))).ok());
  ASSERT_TRUE((*s)->WriteStdin("go\n", In(absl::Seconds(30))).ok());
  ExitInfo exit;
  while (true) {
    auto ev = (*s)->Read(In(absl::Seconds(60)));
    ASSERT_TRUE(ev.ok()) << ev.status() << " output so far: " << out;
    if (ev->kind == ExecEvent::Kind::kExit) {
      exit = ev->exit;
      break;
    }
    EXPECT_NE(ev->kind, ExecEvent::Kind::kStderr) << "a tty session has no separate stderr";
    out += ev->data;
  }

  EXPECT_THAT(out, HasSubstr("/dev/pts/"));
  EXPECT_THAT(out, HasSubstr("50 132"));
  EXPECT_EQ(exit.code, 3);
}

TEST_P(AgentLab, ExecTimeoutKillsTheProcessGroup) {
  const absl::Time start = absl::Now();
  auto r = client().RunCommand({.argv = {"sh", "-c", "sleep 600 & sleep 600"},
                                .timeout = absl::Seconds(2)},
                               "", In(absl::Seconds(120)));

  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->exit.timed_out) << r->exit.ToString();
  EXPECT_TRUE(r->exit.signaled);
  EXPECT_EQ(r->exit.signal, SIGKILL);
  EXPECT_LT(absl::Now() - start, absl::Seconds(100));
  // The background sleep was in the group too.
  CommandResult ps = Run({"sh", "-c", "ps -o args | grep -c '^sleep 600' || true"});
  EXPECT_EQ(ps.stdout_data, "0\n");
}

TEST_P(AgentLab, WrittenFileReadsBackWithTheSameBytesAndMode) {
  const std::string data = PseudoRandom(3 * 1024 * 1024 + 17, 7);

  auto size = client().WriteFile("/tmp/lab/files/blob", data, {.mode = 0640, .make_parents = true},
                                 In(absl::Seconds(120)));
  ASSERT_TRUE(size.ok()) << size.status();
  auto back = client().ReadFile("/tmp/lab/files/blob", 0, In(absl::Seconds(120)));
  auto info = client().Stat("/tmp/lab/files/blob", In(absl::Seconds(30)));

  EXPECT_EQ(*size, data.size());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == data) << "read back " << back->size() << " bytes";
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->exists);
  EXPECT_EQ(info->size, data.size());
  EXPECT_EQ(info->mode & 07777, 0640u);
  // And the guest's own tools agree.
  CommandResult r = Run({"stat", "-c", "%a %s", "/tmp/lab/files/blob"});
  EXPECT_EQ(r.stdout_data, absl::StrCat("640 ", data.size(), "\n"));
}

TEST_P(AgentLab, StatOfMissingPathSaysItDoesNotExist) {
  auto info = client().Stat("/no/such/path", In(absl::Seconds(30)));

  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->exists);
}

TEST_P(AgentLab, ReadOfMissingFileIsNotFound) {
  auto data = client().ReadFile("/no/such/file", 0, In(absl::Seconds(30)));

  EXPECT_TRUE(absl::IsNotFound(data.status())) << data.status();
}

// A guest TCP echo server (busybox nc -ll -e cat) started late: readiness fires only once it
// listens, then connect-through carries bytes both ways.
TEST_P(AgentLab, ListenerReadinessThenConnectThroughToAGuestEchoServer) {
  constexpr uint32_t kPort = 7777;
  auto not_yet = client().WaitReady(ReadyCondition::ListenerPort(kPort), In(absl::Seconds(1)));
  EXPECT_TRUE(absl::IsDeadlineExceeded(not_yet.status())) << not_yet.status();

  auto server = client().StartExec(
      {.argv = {"sh", "-c", absl::StrCat("sleep 2; exec nc -ll -p ", kPort, " -e cat")}},
      In(absl::Seconds(60)));
  ASSERT_TRUE(server.ok()) << server.status();
  const absl::Time started = absl::Now();
  auto waited = client().WaitReady(ReadyCondition::ListenerPort(kPort), In(absl::Seconds(120)));
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_GE(absl::Now() - started, absl::Seconds(1)) << "readiness fired before the listener";

  auto conn = client().Connect(kPort, In(absl::Seconds(60)));
  ASSERT_TRUE(conn.ok()) << conn.status();
  const std::string payload = PseudoRandom(size_t{256} << 10, 9);
  std::thread writer([&] {
    size_t off = 0;
    while (off < payload.size()) {
      ssize_t n = write(conn->get(), payload.data() + off, payload.size() - off);
      if (n <= 0) {
        return;
      }
      off += static_cast<size_t>(n);
    }
    shutdown(conn->get(), SHUT_WR);
  });
  std::string echoed;
  char buf[65536];
  while (echoed.size() < payload.size()) {
    ssize_t n = read(conn->get(), buf, sizeof(buf));
    if (n <= 0) {
      break;
    }
    echoed.append(buf, static_cast<size_t>(n));
  }
  writer.join();

  EXPECT_EQ(echoed.size(), payload.size());
  EXPECT_TRUE(echoed == payload);
  ASSERT_TRUE((*server)->Signal(SIGKILL, In(absl::Seconds(30))).ok());
  while (true) {
    auto ev = (*server)->Read(In(absl::Seconds(60)));
    ASSERT_TRUE(ev.ok()) << ev.status();
    if (ev->kind == ExecEvent::Kind::kExit) {
      break;
    }
  }
}

TEST_P(AgentLab, ConnectToAClosedGuestPortFails) {
  auto conn = client().Connect(1, In(absl::Seconds(30)));

  EXPECT_TRUE(absl::IsUnavailable(conn.status()) || absl::IsFailedPrecondition(conn.status()))
      << conn.status();
  // Said by the agent (a dead worker would fail the same call with another message).
  EXPECT_THAT(conn.status().message(), HasSubstr("connect 127.0.0.1:1"));
}

TEST_P(AgentLab, RestoredGenerationShowsInPing) {
  auto gen = client().Restored({.entropy = PseudoRandom(32, 5),
                                .wall_clock = absl::Now(),
                                .vm_id = "lab-vm",
                                .machine_id = std::string(32, 'b'),
                                .generation = 4},
                               In(absl::Seconds(60)));
  ASSERT_TRUE(gen.ok()) << gen.status();
  auto pong = client().Ping(In(absl::Seconds(30)));

  EXPECT_EQ(*gen, 4u);
  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_EQ(pong->generation, 4u);
}

// The hand tool, end to end: its exit status is the command's.
TEST_P(AgentLab, SmAgentToolExitsWithTheCommandsStatus) {
  auto child = base::ChildProcess::Spawn(
      {.argv = {SM_AGENT_TOOL_BIN, "--socket", vm().vsock_path(), "exec", "--", "sh", "-c",
                "exit 7"}});
  ASSERT_TRUE(child.ok()) << child.status();
  auto st = child->WaitFor(absl::Seconds(120));
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->ToString(), "exited 7");

  auto killed = base::ChildProcess::Spawn(
      {.argv = {SM_AGENT_TOOL_BIN, "--socket", vm().vsock_path(), "exec", "--", "sh", "-c",
                "kill -KILL $$"}});
  ASSERT_TRUE(killed.ok()) << killed.status();
  auto kst = killed->WaitFor(absl::Seconds(120));
  ASSERT_TRUE(kst.ok()) << kst.status();
  EXPECT_EQ(kst->ToString(), "exited 137");
}

INSTANTIATE_TEST_SUITE_P(Booted, AgentLab, ::testing::Values(Mode::kBooted));
INSTANTIATE_TEST_SUITE_P(Restored, AgentLab, ::testing::Values(Mode::kRestored));

}  // namespace
}  // namespace supermachine::agent
