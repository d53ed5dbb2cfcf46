// File: service_test.cc
// SupermachineService through a real grpc::Server on a Unix socket in a per-test temp dir,
// backed by a real Store: what a client sees, codes and messages included.
#include "daemon/api/service.h"

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr int64_t kNowMs = 1'700'000'000'000;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<store::Store> s =
        store::Store::Open(dir_.Join("store.db"), [] { return kNowMs; });
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::make_unique<store::Store>(std::move(*s));
    std::filesystem::create_directory(dir_.Join("snapshots"));
    std::filesystem::create_directory(dir_.Join("kvm_pvm"));
    std::ofstream(dir_.Join("kvm")) << "";
    service_ = std::make_unique<SupermachineService>(ServiceOptions{
        .store = store_.get(),
        .snapshots_dir = dir_.Join("snapshots"),
        .daemon_version = "9.8.7",
        .kvm_paths = {.dev_kvm = dir_.Join("kvm"), .cpuinfo = dir_.Join("cpuinfo"),
                      .pvm_module = dir_.Join("kvm_pvm")},
        .on_rpc_done =
            [this](const std::string& method, grpc::StatusCode code) {
              std::lock_guard<std::mutex> lock(mu_);
              calls_.emplace_back(method, code);
            },
    });
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + dir_.Join("s.sock"), grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Supermachine::NewStub(
        grpc::CreateChannel("unix:" + dir_.Join("s.sock"), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) {
      server_->Shutdown();
    }
  }

  void PutSnapshot(const std::string& name, const std::string& path, const std::string& meta) {
    store::SnapshotRecord r;
    r.name = name;
    r.bake_key = "key-" + name;
    r.path = path;
    r.created_ms = kNowMs - 1000;
    r.size_bytes = 4096;
    r.metadata_json = meta;
    ASSERT_TRUE(store_->PutSnapshot(r).ok());
  }
  void JournalVm(const std::string& id, const std::string& snapshot) {
    store::VmRecord vm;
    vm.id = id;
    vm.snapshot_name = snapshot;
    vm.state = "starting";
    vm.ports_json = R"([{"host_port": 8080, "guest_port": 80, "host_address": "127.0.0.1"}])";
    vm.labels_json = R"({"team": "a"})";
    ASSERT_TRUE(store_->JournalVm(vm).ok());
  }

  test_support::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<SupermachineService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Supermachine::Stub> stub_;
  std::mutex mu_;
  std::vector<std::pair<std::string, grpc::StatusCode>> calls_;
};

TEST_F(ServiceTest, ListSnapshotsReturnsRecordsWithTheirMetadata) {
  PutSnapshot("redis", dir_.Join("snapshots/redis"),
              R"({"image": "redis:7", "image_digest": "sha256:abc", "memory_mib": 256,
                  "vcpus": 2, "guest_port": 6379, "timings_ms": {"total": 1500}})");
  grpc::ClientContext ctx;
  v1::ListSnapshotsResponse resp;
  grpc::Status st = stub_->ListSnapshots(&ctx, {}, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.snapshots_size(), 1);
  const v1::Snapshot& s = resp.snapshots(0);
  EXPECT_EQ(s.name(), "redis");
  EXPECT_EQ(s.image(), "redis:7");
  EXPECT_EQ(s.image_digest(), "sha256:abc");
  EXPECT_EQ(s.vcpus(), 2u);
  EXPECT_EQ(s.guest_port(), 6379u);
  EXPECT_EQ(s.size_bytes(), 4096u);
  EXPECT_EQ(s.created_unix_ms(), kNowMs - 1000);
  EXPECT_THAT(s.timings_ms(), ElementsAre(Pair("total", 1500u)));
}

TEST_F(ServiceTest, InspectUnknownSnapshotIsNotFoundNamingIt) {
  grpc::ClientContext ctx;
  v1::InspectSnapshotRequest req;
  req.set_name("nope");
  v1::Snapshot resp;
  grpc::Status st = stub_->InspectSnapshot(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(st.error_message(), HasSubstr("'nope'"));
}

TEST_F(ServiceTest, InspectWithoutNameIsInvalidArgument) {
  grpc::ClientContext ctx;
  v1::Snapshot resp;
  grpc::Status st = stub_->InspectSnapshot(&ctx, {}, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("snapshot name is required"));
}

TEST_F(ServiceTest, RemoveSnapshotInUseIsFailedPrecondition) {
  PutSnapshot("busy", dir_.Join("snapshots/busy"), "{}");
  JournalVm("vm-1", "busy");
  grpc::ClientContext ctx;
  v1::RemoveSnapshotRequest req;
  req.set_name("busy");
  v1::RemoveSnapshotResponse resp;
  grpc::Status st = stub_->RemoveSnapshot(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("release them first"));
}

TEST_F(ServiceTest, RemoveSnapshotDeletesRowAndItsDirectoryInsideSnapshotsDir) {
  std::filesystem::create_directory(dir_.Join("snapshots/old"));
  std::ofstream(dir_.Join("snapshots/old/memory")) << "ram";
  PutSnapshot("old", dir_.Join("snapshots/old"), "{}");
  grpc::ClientContext ctx;
  v1::RemoveSnapshotRequest req;
  req.set_name("old");
  v1::RemoveSnapshotResponse resp;
  grpc::Status st = stub_->RemoveSnapshot(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("snapshots/old")));
  EXPECT_EQ(store_->GetSnapshot("old").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ServiceTest, RemoveSnapshotNeverDeletesOutsideSnapshotsDir) {
  std::filesystem::create_directory(dir_.Join("elsewhere"));
  PutSnapshot("foreign", dir_.Join("snapshots/../elsewhere"), "{}");
  grpc::ClientContext ctx;
  v1::RemoveSnapshotRequest req;
  req.set_name("foreign");
  v1::RemoveSnapshotResponse resp;
  ASSERT_TRUE(stub_->RemoveSnapshot(&ctx, req, &resp).ok());
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("elsewhere")));
}

TEST_F(ServiceTest, ListVmsHidesEndedOnesUnlessAll) {
  PutSnapshot("web", dir_.Join("snapshots/web"), "{}");
  JournalVm("vm-live", "web");
  JournalVm("vm-gone", "web");
  ASSERT_TRUE(store_->EndVm("vm-gone", store::EndCause::kExited, 3, std::nullopt).ok());

  grpc::ClientContext running_ctx;
  v1::ListVMsResponse running;
  ASSERT_TRUE(stub_->ListVMs(&running_ctx, {}, &running).ok());
  grpc::ClientContext all_ctx;
  v1::ListVMsRequest all_req;
  all_req.set_all(true);
  v1::ListVMsResponse all;
  ASSERT_TRUE(stub_->ListVMs(&all_ctx, all_req, &all).ok());

  ASSERT_EQ(running.vms_size(), 1);
  EXPECT_EQ(running.vms(0).id(), "vm-live");
  EXPECT_EQ(running.vms(0).ports(0).host_port(), 8080u);
  EXPECT_THAT(running.vms(0).labels(), ElementsAre(Pair("team", "a")));
  ASSERT_EQ(all.vms_size(), 2);
}

TEST_F(ServiceTest, EndedVmCarriesItsTypedCause) {
  PutSnapshot("web", dir_.Join("snapshots/web"), "{}");
  JournalVm("vm-gone", "web");
  ASSERT_TRUE(store_->EndVm("vm-gone", store::EndCause::kExited, 3, std::nullopt).ok());
  grpc::ClientContext ctx;
  v1::ListVMsRequest req;
  req.set_all(true);
  v1::ListVMsResponse resp;
  ASSERT_TRUE(stub_->ListVMs(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.vms_size(), 1);
  EXPECT_EQ(resp.vms(0).state(), v1::VM_STATE_ENDED);
  EXPECT_EQ(resp.vms(0).end_cause(), v1::END_CAUSE_EXITED);
  EXPECT_EQ(resp.vms(0).exit_code(), 3);
}

TEST_F(ServiceTest, HealthServesWithWorkingStoreAndReportsPvm) {
  grpc::ClientContext ctx;
  v1::HealthResponse resp;
  ASSERT_TRUE(stub_->Health(&ctx, {}, &resp).ok());
  EXPECT_TRUE(resp.serving());
  EXPECT_EQ(resp.kvm(), "pvm");
  ASSERT_EQ(resp.problems_size(), 1);
  EXPECT_THAT(resp.problems(0), HasSubstr("PVM"));
}

TEST_F(ServiceTest, VersionReportsDaemonAndApi) {
  grpc::ClientContext ctx;
  v1::VersionResponse resp;
  ASSERT_TRUE(stub_->Version(&ctx, {}, &resp).ok());
  EXPECT_EQ(resp.daemon(), "9.8.7");
  EXPECT_EQ(resp.api(), "supermachine.v1");
}

TEST_F(ServiceTest, AcquireIsUnimplementedNamingThePool) {
  grpc::ClientContext ctx;
  v1::AcquireRequest req;
  req.set_snapshot("redis");
  v1::AcquireResponse resp;
  grpc::Status st = stub_->Acquire(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(st.error_message(), HasSubstr("VM pool"));
}

TEST_F(ServiceTest, BakeStreamEndsUnimplementedNamingThePipeline) {
  grpc::ClientContext ctx;
  v1::BakeRequest req;
  req.set_image("redis");
  auto reader = stub_->Bake(&ctx, req);
  v1::BakeProgress progress;
  EXPECT_FALSE(reader->Read(&progress));
  grpc::Status st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(st.error_message(), HasSubstr("bake pipeline"));
}

TEST_F(ServiceTest, ObserverSeesEachRpcWithItsCode) {
  grpc::ClientContext ctx;
  v1::InspectSnapshotRequest req;
  req.set_name("nope");
  v1::Snapshot resp;
  (void)stub_->InspectSnapshot(&ctx, req, &resp);
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_THAT(calls_, ElementsAre(Pair("InspectSnapshot", grpc::StatusCode::NOT_FOUND)));
}

TEST_F(ServiceTest, CountSnapshotsCountsStoreRows) {
  PutSnapshot("a", dir_.Join("snapshots/a"), "{}");
  PutSnapshot("b", dir_.Join("snapshots/b"), "{}");
  absl::StatusOr<int64_t> n = service_->CountSnapshots();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
}

}  // namespace
}  // namespace supermachine::api
