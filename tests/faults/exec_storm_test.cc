// File: exec_storm_test.cc
// Exec storm (issue #11 "Load") without guests: 8 client threads run 350 short execs at once
// into one VM through the daemon's real Exec RPC (gRPC server, SupermachineService, VmManager
// over the fake launcher, AgentClient), served by the real guest agent's RPC server in a
// process of its own (sm_storm_agent: host commands through the agent's reaper and stdio
// plumbing). Every exec must succeed with the right output and exit code; afterwards this
// process's fds and its own threads must come back to the baseline (only the daemon side
// lives here; gRPC's pool threads are reported and only bounded).
// The numbers (before, peak, after; RSS too) are printed for docs/faults.md.
#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/agent/agent_client.h"
#include "daemon/api/service.h"
#include "daemon/vm/vm_manager.h"
#include "proto/supermachine.grpc.pb.h"
#include "tests/faults/cache_check.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/pool/fake_vm.h"
#include "worker/base/child_process.h"

namespace supermachine::faults {
namespace {

constexpr int kShortThreads = 6;      // true / echo / exit 7, in turn
constexpr int kShortExecs = 50;       // per short thread
constexpr int kStreamThreads = 2;     // cat of kStreamBytes through stdin and stdout
constexpr int kStreamExecs = 25;      // per streaming thread
constexpr size_t kStreamBytes = size_t{256} * 1024;
// After the storm, fds and threads get this long to return to the baseline (the last streams
// wind down after their exits; the machine may be 3x slower than ours).
constexpr absl::Duration kSettle = absl::Seconds(120);
constexpr int kFdSlack = 2;
// Threads named after the process must all be gone.
constexpr int kThreadSlack = 0;
// gRPC keeps some pool threads after a burst (its default executor grows to 2 per core and
// keeps them; the sync server keeps idle pollers): bounded, far below one per exec (350).
const int kGrpcThreadSlack = 2 * static_cast<int>(std::thread::hardware_concurrency()) + 2;

std::string Comm(const std::string& path) {
  std::string name;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[64] = {};
    if (std::fgets(buf, sizeof(buf), f) != nullptr) {
      name = buf;
    }
    std::fclose(f);
  }
  return name;
}

// This process's threads by name: those still named after the process (the test's clients,
// the manager's and forwarders' threads) and the rest: gRPC's named pools (default-executor,
// grpcpp_sync_server, ...) and whatever their handlers start (a thread inherits its creator's
// name, so the exec bridge's input pumps count here).
struct Threads {
  int ours = 0;
  int grpc = 0;
};

Threads CountThreads() {
  Threads t;
  const std::string process = Comm("/proc/self/comm");
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) {
    return {-1, -1};
  }
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') {
      continue;
    }
    (Comm(absl::StrCat("/proc/self/task/", e->d_name, "/comm")) == process ? t.ours : t.grpc)++;
  }
  ::closedir(d);
  return t;
}

struct ExecOutcome {
  grpc::Status status;
  std::string out;
  std::string err;
  int exit_code = -1;
  bool exited = false;
};

// One Exec RPC as smctl runs it: start, stdin (from a second thread, so a command that echoes
// it is drained meanwhile), EOF; read until the exit, then close our side.
ExecOutcome RunExec(v1::Supermachine::Stub* stub, const std::string& vm_id,
                    const std::vector<std::string>& argv, const std::string& stdin_data) {
  ExecOutcome r;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
  std::unique_ptr<grpc::ClientReaderWriter<v1::ExecRequest, v1::ExecResponse>> stream =
      stub->Exec(&ctx);
  v1::ExecRequest start;
  start.mutable_start()->set_vm_id(vm_id);
  for (const std::string& a : argv) {
    start.mutable_start()->add_argv(a);
  }
  std::thread writer([&] {
    if (!stream->Write(start)) {
      return;
    }
    constexpr size_t kChunk = size_t{32} * 1024;
    for (size_t off = 0; off < stdin_data.size(); off += kChunk) {
      v1::ExecRequest in;
      in.set_stdin(stdin_data.substr(off, kChunk));
      if (!stream->Write(in)) {
        return;
      }
    }
    v1::ExecRequest eof;
    eof.set_stdin_eof(true);
    stream->Write(eof);
  });
  v1::ExecResponse resp;
  while (stream->Read(&resp)) {
    if (resp.has_stdout()) {
      r.out += resp.stdout();
    } else if (resp.has_stderr()) {
      r.err += resp.stderr();
    } else if (resp.has_exit()) {
      r.exit_code = resp.exit().exit_code();
      r.exited = true;
      break;
    }
  }
  writer.join();
  stream->WritesDone();
  while (stream->Read(&resp)) {
  }
  r.status = stream->Finish();
  return r;
}

struct Usage {
  int fds = 0;
  int threads = 0;       // ours (see Threads)
  int grpc_threads = 0;  // gRPC's pools
  long rss_kib = 0;
};

Usage Measure() {
  const Threads t = CountThreads();
  return {.fds = OpenFdCount(), .threads = t.ours, .grpc_threads = t.grpc, .rss_kib = ResidentKib()};
}

class ExecStorm : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string agent_sock = dir_.Join("agent.sock");
    absl::StatusOr<base::ChildProcess> agent =
        base::ChildProcess::Spawn({.argv = {SM_STORM_AGENT_PATH, agent_sock}});
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_process_ = std::make_unique<base::ChildProcess>(std::move(*agent));
    client_ = std::make_unique<agent::AgentClient>(std::make_unique<agent::UnixDialer>(agent_sock));
    absl::StatusOr<agent::PingInfo> pong = client_->WaitForAgent(absl::Now() + absl::Seconds(60));
    ASSERT_TRUE(pong.ok()) << pong.status();
    launcher_.agent_ = client_.get();
    vms_ = std::make_unique<vm::VmManager>(vm::VmManagerOptions{
        .launcher = &launcher_,
        .journal = &journal_,
        .resolve_snapshot = [](const std::string&) -> absl::StatusOr<std::string> {
          return std::string("/snapshots/storm");
        },
        .default_pool = {.min = 0, .max = 1},
    });
    service_ = std::make_unique<api::SupermachineService>(api::ServiceOptions{.vms = vms_.get()});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + dir_.Join("d.sock"), grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Supermachine::NewStub(
        grpc::CreateChannel("unix:" + dir_.Join("d.sock"), grpc::InsecureChannelCredentials()));
    v1::AcquireRequest areq;
    areq.set_snapshot("storm");
    v1::AcquireResponse aresp;
    grpc::ClientContext ctx;
    grpc::Status st = stub_->Acquire(&ctx, areq, &aresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    vm_id_ = aresp.vm().id();
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown();
    }
    vms_.reset();  // before the agent client goes away
  }

  // Thread `t`'s share of the storm; counts what went wrong into `failures` (with a message).
  void StormThread(int t, std::atomic<int>* execs, std::atomic<int>* failures) {
    auto fail = [&](const std::string& what) {
      if (failures->fetch_add(1) < 10) {
        ADD_FAILURE() << "thread " << t << ": " << what;
      }
    };
    if (t >= kShortThreads) {
      std::string data(kStreamBytes, '\0');
      for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<char>('a' + (i * 7 + static_cast<size_t>(t)) % 26);
      }
      for (int i = 0; i < kStreamExecs; ++i) {
        ExecOutcome r = RunExec(stub_.get(), vm_id_, {"cat"}, data);
        ++*execs;
        if (!r.status.ok() || !r.exited || r.exit_code != 0 || r.out != data) {
          fail(absl::StrCat("cat #", i, ": ", r.status.error_message(), " exited=", r.exited,
                            " code=", r.exit_code, " out=", r.out.size(), " bytes"));
        }
      }
      return;
    }
    for (int i = 0; i < kShortExecs; ++i) {
      ExecOutcome r;
      std::string want_out;
      int want_code = 0;
      switch (i % 3) {
        case 0:
          r = RunExec(stub_.get(), vm_id_, {"/bin/true"}, "");
          break;
        case 1:
          want_out = absl::StrCat("storm ", t, " ", i, "\n");
          r = RunExec(stub_.get(), vm_id_, {"echo", "storm", std::to_string(t), std::to_string(i)},
                      "");
          break;
        default:
          want_code = 7;
          r = RunExec(stub_.get(), vm_id_, {"sh", "-c", "exit 7"}, "");
          break;
      }
      ++*execs;
      if (!r.status.ok() || !r.exited || r.exit_code != want_code || r.out != want_out) {
        fail(absl::StrCat("exec #", i, ": ", r.status.error_message(), " exited=", r.exited,
                          " code=", r.exit_code, " out='", r.out, "' err='", r.err, "'"));
      }
    }
  }

  test_support::TempDir dir_;
  std::unique_ptr<base::ChildProcess> agent_process_;
  std::unique_ptr<agent::AgentClient> client_;
  vm::testing::FakeJournal journal_;
  vm::testing::FakeLauncher launcher_{&journal_};
  std::unique_ptr<vm::VmManager> vms_;
  std::unique_ptr<api::SupermachineService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Supermachine::Stub> stub_;
  std::string vm_id_;
};

TEST_F(ExecStorm, EightThreadsOfShortAndStreamingExecsAllSucceedAndFdsAndThreadsReturn) {
  constexpr int kThreads = kShortThreads + kStreamThreads;
  // Warm-up at the same concurrency: gRPC's and the allocator's first-use threads and arenas
  // belong to the baseline, not to a leak.
  {
    std::vector<std::thread> warm;
    warm.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      warm.emplace_back([&, t] {
        ExecOutcome r = RunExec(stub_.get(), vm_id_, {"echo", "warm", std::to_string(t)}, "");
        EXPECT_TRUE(r.status.ok() && r.exited && r.exit_code == 0) << r.status.error_message();
      });
    }
    for (std::thread& th : warm) {
      th.join();
    }
  }
  absl::SleepFor(absl::Seconds(1));
  const Usage before = Measure();

  std::atomic<bool> storming{true};
  Usage peak = before;
  std::thread sampler([&] {
    while (storming.load()) {
      Usage u = Measure();
      peak.fds = std::max(peak.fds, u.fds);
      peak.threads = std::max(peak.threads, u.threads);
      peak.grpc_threads = std::max(peak.grpc_threads, u.grpc_threads);
      peak.rss_kib = std::max(peak.rss_kib, u.rss_kib);
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  std::atomic<int> execs{0};
  std::atomic<int> failures{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { StormThread(t, &execs, &failures); });
  }
  for (std::thread& th : threads) {
    th.join();
  }
  const absl::Duration took = absl::Now() - start;
  storming = false;
  sampler.join();

  // Everything the storm opened is closed and its threads are gone, given time.
  Usage after = Measure();
  const absl::Time settle_until = absl::Now() + kSettle;
  while ((after.fds > before.fds + kFdSlack || after.threads > before.threads + kThreadSlack ||
          after.grpc_threads > before.grpc_threads + kGrpcThreadSlack) &&
         absl::Now() < settle_until) {
    absl::SleepFor(absl::Milliseconds(100));
    after = Measure();
  }
  std::printf(
      "exec storm: %d execs (%d threads) in %s, %d failed; fds %d -> peak %d -> %d, threads "
      "(ours) %d -> peak %d -> %d, gRPC pool threads %d -> peak %d -> %d, RSS %ld -> peak %ld "
      "-> %ld KiB\n",
      execs.load(), kThreads, absl::FormatDuration(took).c_str(), failures.load(), before.fds,
      peak.fds, after.fds, before.threads, peak.threads, after.threads, before.grpc_threads,
      peak.grpc_threads, after.grpc_threads, before.rss_kib, peak.rss_kib, after.rss_kib);
  EXPECT_EQ(execs.load(), kShortThreads * kShortExecs + kStreamThreads * kStreamExecs);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(after.fds, before.fds + kFdSlack);
  EXPECT_LE(after.threads, before.threads + kThreadSlack);
  EXPECT_LE(after.grpc_threads, before.grpc_threads + kGrpcThreadSlack);
}

}  // namespace
}  // namespace supermachine::faults
