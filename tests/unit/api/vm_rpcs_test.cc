// File: vm_rpcs_test.cc
// The VM RPCs through a real grpc::Server with a real VmManager over fake VMs (no KVM, no
// agent): status codes and messages of Acquire/Release/ListVMs/Exec/Logs/ReadFile, the
// conversion of AcquireRequest.
#include <filesystem>
#include <fstream>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "daemon/agent/agent_client.h"
#include "daemon/api/service.h"
#include "daemon/api/vm_rpcs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/agent_client/fake_agent.h"
#include "tests/unit/pool/fake_vm.h"

namespace supermachine::api {
namespace {

using ::testing::HasSubstr;

class VmRpcsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vms_ = std::make_unique<vm::VmManager>(vm::VmManagerOptions{
        .launcher = &launcher_,
        .journal = &journal_,
        .resolve_snapshot = [](const std::string& name) -> absl::StatusOr<std::string> {
          if (name == "web") {
            return std::string("/snapshots/web");
          }
          return absl::NotFoundError("unknown");
        },
        .default_pool = {.min = 0, .max = 1},
    });
    service_ = std::make_unique<SupermachineService>(ServiceOptions{.vms = vms_.get()});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + dir_.Join("s.sock"), grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Supermachine::NewStub(
        grpc::CreateChannel("unix:" + dir_.Join("s.sock"), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(); }

  grpc::Status Acquire(const v1::AcquireRequest& req, v1::AcquireResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->Acquire(&ctx, req, resp);
  }

  test_support::TempDir dir_;
  vm::testing::FakeJournal journal_;
  vm::testing::FakeLauncher launcher_{&journal_};
  std::unique_ptr<vm::VmManager> vms_;
  std::unique_ptr<SupermachineService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Supermachine::Stub> stub_;
};

TEST_F(VmRpcsTest, AcquireReturnsTheVmAndReleaseEndsIt) {
  v1::AcquireRequest req;
  req.set_snapshot("web");
  req.set_name("one");
  (*req.mutable_labels())["team"] = "a";
  v1::PortForward* p = req.add_ports();
  p->set_guest_port(80);
  v1::AcquireResponse resp;
  grpc::Status st = Acquire(req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.vm().name(), "one");
  EXPECT_EQ(resp.vm().snapshot(), "web");
  EXPECT_EQ(resp.vm().state(), v1::VM_STATE_RUNNING);
  EXPECT_EQ(resp.vm().labels().at("team"), "a");
  ASSERT_EQ(resp.vm().ports_size(), 1);
  EXPECT_NE(resp.vm().ports(0).host_port(), 0u);
  EXPECT_EQ(resp.vm().ports(0).host_address(), "127.0.0.1");
  EXPECT_FALSE(resp.pool_hit());

  grpc::ClientContext rctx;
  v1::ReleaseRequest rel;
  rel.set_vm_id("one");
  v1::ReleaseResponse rresp;
  ASSERT_TRUE(stub_->Release(&rctx, rel, &rresp).ok());
  EXPECT_EQ(journal_.EndOf(resp.vm().id()), store::EndCause::kReleased);
}

TEST_F(VmRpcsTest, StatusCodes) {
  v1::AcquireResponse resp;
  v1::AcquireRequest unknown;
  unknown.set_snapshot("nope");
  EXPECT_EQ(Acquire(unknown, &resp).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::AcquireRequest empty;
  EXPECT_EQ(Acquire(empty, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::AcquireRequest env;
  env.set_snapshot("web");
  env.add_env("A=1");
  grpc::Status st = Acquire(env, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("bake"));

  v1::AcquireRequest ok;
  ok.set_snapshot("web");
  ASSERT_TRUE(Acquire(ok, &resp).ok());
  st = Acquire(ok, &resp);  // max 1
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();

  grpc::ClientContext rctx;
  v1::ReleaseRequest rel;
  rel.set_vm_id("ghost");
  v1::ReleaseResponse rresp;
  EXPECT_EQ(stub_->Release(&rctx, rel, &rresp).error_code(), grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext fctx;
  v1::ReadFileRequest rf;
  rf.set_vm_id("ghost");
  rf.set_path("etc/passwd");
  v1::ReadFileResponse rfresp;
  EXPECT_EQ(stub_->ReadFile(&fctx, rf, &rfresp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(VmRpcsTest, ExecWithoutStartOrOfUnknownVmFails) {
  {
    grpc::ClientContext ctx;
    auto stream = stub_->Exec(&ctx);
    v1::ExecRequest stdin_first;
    stdin_first.set_stdin("x");
    stream->Write(stdin_first);
    stream->WritesDone();
    v1::ExecResponse r;
    EXPECT_FALSE(stream->Read(&r));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    auto stream = stub_->Exec(&ctx);
    v1::ExecRequest start;
    start.mutable_start()->set_vm_id("ghost");
    start.mutable_start()->add_argv("true");
    stream->Write(start);
    stream->WritesDone();
    v1::ExecResponse r;
    EXPECT_FALSE(stream->Read(&r));
    grpc::Status st = stream->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(st.error_message(), HasSubstr("smctl ps"));
  }
}

TEST_F(VmRpcsTest, LogsStreamsTheConsoleFile) {
  // FakeVm's console_log is "/nonexistent": the stream is empty and ends (no follow).
  v1::AcquireRequest req;
  req.set_snapshot("web");
  v1::AcquireResponse resp;
  ASSERT_TRUE(Acquire(req, &resp).ok());
  grpc::ClientContext ctx;
  v1::LogsRequest lr;
  lr.set_vm_id(resp.vm().id());
  auto reader = stub_->Logs(&ctx, lr);
  v1::LogChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  EXPECT_TRUE(reader->Finish().ok());
}

// The worker rotates console.log to console.log.1 when it is full: `smctl logs` shows the
// older file first, then the current one.
TEST_F(VmRpcsTest, LogsStreamsTheRotatedConsoleBeforeTheCurrentOne) {
  launcher_.console_dir_ = dir_.path();
  v1::AcquireRequest req;
  req.set_snapshot("web");
  v1::AcquireResponse resp;
  ASSERT_TRUE(Acquire(req, &resp).ok());
  const std::string id = resp.vm().id();
  test_support::WriteFileOrDie(dir_.Join(id + ".log.1"), "older\n");
  test_support::WriteFileOrDie(dir_.Join(id + ".log"), "newer\n");
  grpc::ClientContext ctx;
  v1::LogsRequest lr;
  lr.set_vm_id(id);
  auto reader = stub_->Logs(&ctx, lr);
  std::string seen;
  v1::LogChunk chunk;
  while (reader->Read(&chunk)) {
    seen += chunk.data();
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(seen, "older\nnewer\n");
}

// `smctl logs -f` of a supervised VM: its worker dies, the restart is a new VM under a new id,
// and the same stream carries on with the new run's console; releasing that one ends it.
TEST_F(VmRpcsTest, LogsFollowCarriesOnAcrossSupervisedRestarts) {
  launcher_.console_dir_ = dir_.path();
  v1::AcquireRequest req;
  req.set_snapshot("web");
  req.set_restart_policy("always");
  v1::AcquireResponse resp;
  ASSERT_TRUE(Acquire(req, &resp).ok());
  const std::string first = resp.vm().id();
  test_support::WriteFileOrDie(dir_.Join(first + ".log"), "first run\n");

  grpc::ClientContext ctx;
  v1::LogsRequest lr;
  lr.set_vm_id(first);
  lr.set_follow(true);
  auto reader = stub_->Logs(&ctx, lr);
  absl::Mutex mu;
  std::string seen;
  std::thread read_all([&] {
    v1::LogChunk chunk;
    while (reader->Read(&chunk)) {
      absl::MutexLock lock(&mu);
      seen += chunk.data();
    }
  });
  auto saw = [&](const std::string& text) {
    return vm::testing::Eventually(
        [&] {
          absl::MutexLock lock(&mu);
          return seen.find(text) != std::string::npos;
        },
        absl::Seconds(30));
  };
  ASSERT_TRUE(saw("first run"));

  launcher_.State(first)->dead = true;  // the worker dies; `always` restarts it
  std::string second;
  ASSERT_TRUE(vm::testing::Eventually(
      [&] {
        second = vms_->Successor(first).value_or("");
        return !second.empty();
      },
      absl::Seconds(30)));
  test_support::WriteFileOrDie(dir_.Join(second + ".log"), "second run\n");
  EXPECT_TRUE(saw("second run"));

  ASSERT_TRUE(vms_->Release(second).ok());  // ended for good: the stream ends
  read_all.join();
  EXPECT_TRUE(reader->Finish().ok());
  absl::MutexLock lock(&mu);
  EXPECT_EQ(seen, "first run\nsecond run\n");
}

// A fake agent whose exec upper-cases stdin to stdout until EOF, writes argv[0] to stderr and
// exits 3: the bridge must carry stdin, both outputs and the exit code, in order.
TEST_F(VmRpcsTest, ExecBridgesStdinOutputAndExitCode) {
  agent::testing::FakeAgent fake(dir_.Join("a.sock"), [](int fd, const agent::v1::Request& req) {
    if (!req.has_exec()) {
      return;
    }
    agent::v1::Response started;
    started.mutable_exec_started()->set_pid(7);
    agent::testing::Send(fd, started);
    agent::v1::ExecOutput err;
    err.set_stderr(req.exec().argv(0));
    agent::testing::Send(fd, err);
    agent::v1::ExecInput in;
    while (agent::testing::Recv(fd, &in) && !in.stdin_eof()) {
      std::string up = in.stdin();
      for (char& c : up) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      agent::v1::ExecOutput out;
      out.set_stdout(up);
      agent::testing::Send(fd, out);
    }
    agent::v1::ExecOutput exit;
    exit.mutable_exit()->set_exit_code(3);
    agent::testing::Send(fd, exit);
  });
  agent::AgentClient client(std::make_unique<agent::UnixDialer>(dir_.Join("a.sock")));
  launcher_.agent_ = &client;
  v1::AcquireRequest areq;
  areq.set_snapshot("web");
  v1::AcquireResponse aresp;
  ASSERT_TRUE(Acquire(areq, &aresp).ok());

  grpc::ClientContext ctx;
  auto stream = stub_->Exec(&ctx);
  v1::ExecRequest start;
  start.mutable_start()->set_vm_id(aresp.vm().id());
  start.mutable_start()->add_argv("shout");
  ASSERT_TRUE(stream->Write(start));
  v1::ExecRequest data;
  data.set_stdin("abc");
  ASSERT_TRUE(stream->Write(data));
  v1::ExecRequest eof;
  eof.set_stdin_eof(true);
  ASSERT_TRUE(stream->Write(eof));
  std::string out;
  std::string err;
  int code = -1;
  v1::ExecResponse resp;
  while (stream->Read(&resp)) {
    if (resp.has_stdout()) {
      out += resp.stdout();
    } else if (resp.has_stderr()) {
      err += resp.stderr();
    } else if (resp.has_exit()) {
      code = resp.exit().exit_code();
      stream->WritesDone();  // as smctl does once the exit arrived
    }
  }
  grpc::Status st = stream->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out, "ABC");
  EXPECT_EQ(err, "shout");
  EXPECT_EQ(code, 3);
  launcher_.agent_ = nullptr;
  vms_.reset();  // before the agent client goes away
}

TEST(AcquireOptionsFromProto, DeadlineIsTheEarlierOfRequestAndRpc) {
  v1::AcquireRequest req;
  req.set_snapshot("web");
  req.set_deadline_ms(1000);
  absl::Time rpc = absl::Now() + absl::Seconds(60);
  absl::StatusOr<vm::AcquireOptions> o = AcquireOptionsFromProto(req, rpc);
  ASSERT_TRUE(o.ok());
  EXPECT_LT(o->deadline, absl::Now() + absl::Seconds(2));
  req.set_deadline_ms(0);
  o = AcquireOptionsFromProto(req, absl::InfiniteFuture());
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->deadline, absl::InfiniteFuture()) << "0: the pool's acquire_timeout";
  v1::PortForward* p = req.add_ports();
  p->set_guest_port(70000);
  EXPECT_TRUE(absl::IsInvalidArgument(AcquireOptionsFromProto(req, rpc).status()));
}

// Supervision (docs/supervision.md): the policy is parsed, the health check gets Docker's
// defaults, and bad values are refused before anything is restored.
TEST(AcquireOptionsFromProto, RestartPolicyAndHealthCheck) {
  v1::AcquireRequest req;
  req.set_snapshot("web");
  req.set_restart_policy("on-failure:3");
  req.mutable_health_check()->add_cmd("true");
  req.mutable_health_check()->set_interval_ms(2000);
  absl::StatusOr<vm::AcquireOptions> o = AcquireOptionsFromProto(req, absl::InfiniteFuture());
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(vm::ToString(o->restart), "on-failure:3");
  EXPECT_EQ(o->health.argv, std::vector<std::string>{"true"});
  EXPECT_EQ(o->health.interval, absl::Seconds(2));
  EXPECT_EQ(o->health.timeout, absl::Seconds(30));
  EXPECT_EQ(o->health.retries, 3u);
  req.set_restart_policy("sometimes");
  EXPECT_TRUE(absl::IsInvalidArgument(AcquireOptionsFromProto(req, absl::InfiniteFuture()).status()));
  req.set_restart_policy("always");
  req.mutable_health_check()->clear_cmd();
  EXPECT_TRUE(absl::IsInvalidArgument(AcquireOptionsFromProto(req, absl::InfiniteFuture()).status()));
  req.clear_health_check();
  o = AcquireOptionsFromProto(req, absl::InfiniteFuture());
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->health.enabled());
}

}  // namespace
}  // namespace supermachine::api
