// File: volumes_lab_test.cc
// Volumes end to end on a real guest (docs/volumes.md): the daemon bakes a busybox image with
// two volume slots (/data, /scratch; parked), then restores it twice. VM 1 binds the named
// volume `mine` to /data and writes a file into both volumes through Exec; it is released.
// VM 2 binds `mine` again: the file is on /data, while its /scratch — a private copy of the
// clean image, as every unnamed slot and every pool VM gets — is empty. The snapshot's own
// images never see a write. One bake, two restores: each costs minutes on emulated KVM.
#include <filesystem>
#include <fstream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/supermachine.grpc.pb.h"
#include "tests/integration/daemon/daemon_process.h"
#include "tests/lab/agent/agent_vm.h"
#include "tests/lab/daemon/web_snapshot.h"

namespace supermachine {
namespace {

namespace fs = std::filesystem;
using lab::ExecIn;
using lab::ExecOut;
using ::testing::HasSubstr;

constexpr char kMarker[] = "written-by-vm-1";

TEST(VolumesLab, NamedVolumeOutlivesItsVmAndUnnamedSlotsArePrivate) {
  const std::string kernel_dir = agent::lab::KernelDir(SM_SOURCE_DIR);
  ASSERT_FALSE(kernel_dir.empty()) << "guest kernel not built: run kernel/build.sh";
  ASSERT_TRUE(fs::exists("/dev/kvm")) << "no /dev/kvm: run via tests/lab/run";
  test_support::ScratchDir scratch;
  fs::create_directories(scratch.File("work"));
  // The workload only sleeps: the test execs.
  const absl::Status layout = lab::WriteBusyboxLayout(scratch.File("layout"), scratch.File("work"),
                                                      {"/bin/busybox", "sleep", "1000000"});
  ASSERT_TRUE(layout.ok()) << layout;

  const std::string config = scratch.File("config.json");
  std::ofstream(config) << absl::StrCat(
      R"({"kernel": ")", kernel_dir, R"(/vmlinux", "guest_agent": ")", SM_GUEST_AGENT_BIN,
      R"(", "default_pool": {"min": 0, "max": 4, "acquire_timeout_s": 600}})");
  auto daemon = test_support::DaemonProcess::Start(
      scratch.path(), {"--config", config, "--worker-binary", SM_WORKER_BIN});
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  auto stub = v1::Supermachine::NewStub(
      grpc::CreateChannel("unix:" + daemon->socket(), grpc::InsecureChannelCredentials()));

  // 1. The bake: two volume slots, parked (the default with volumes).
  std::string snapshot_dir;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(20));
    v1::BakeRequest req;
    req.set_image("oci-layout:" + scratch.File("layout") + ":v1");
    req.set_name("vols");
    req.add_volumes("data:/data:32M");
    req.add_volumes("scratch:/scratch:32M");
    auto reader = stub->Bake(&ctx, req);
    v1::BakeProgress p;
    while (reader->Read(&p)) {
      if (p.has_result()) {
        snapshot_dir = p.result().path();
      }
    }
    grpc::Status st = reader->Finish();
    ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << daemon->Stderr();
    ASSERT_FALSE(snapshot_dir.empty());
  }

  auto acquire = [&](const std::vector<std::string>& volumes) -> std::string {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    v1::AcquireRequest req;
    req.set_snapshot("vols");
    for (const std::string& v : volumes) {
      req.add_volumes(v);
    }
    v1::AcquireResponse resp;
    grpc::Status st = stub->Acquire(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message() << "\n" << daemon->Stderr();
    return resp.vm().id();
  };
  auto release = [&](const std::string& id) {
    grpc::ClientContext ctx;
    v1::ReleaseRequest req;
    req.set_vm_id(id);
    v1::ReleaseResponse resp;
    grpc::Status st = stub->Release(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
  };

  // 2. VM 1 with the named volume writes into both volumes and syncs.
  const std::string vm1 = acquire({"mine:/data"});
  ASSERT_FALSE(vm1.empty());
  ExecOut w = ExecIn(*stub, vm1,
                     {"/bin/busybox", "sh", "-c",
                      absl::StrCat("echo ", kMarker, " > /data/f && echo ", kMarker,
                                   " > /scratch/f && sync && cat /proc/mounts")});
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_THAT(w.out, HasSubstr(" /data ext4 ")) << "the volume is mounted";
  // While VM 1 holds it, nobody else gets it.
  {
    grpc::ClientContext ctx;
    v1::AcquireRequest req;
    req.set_snapshot("vols");
    req.add_volumes("mine:/data");
    v1::AcquireResponse resp;
    grpc::Status st = stub->Acquire(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr(vm1));
  }
  release(vm1);
  // vm_dir defaults to <state_dir>/vms.
  EXPECT_FALSE(fs::exists(absl::StrCat(scratch.File("state/vms/"), vm1, "/volumes")))
      << "VM 1's private copies end with it";
  EXPECT_TRUE(fs::exists(absl::StrCat(scratch.File("state/vms/"), vm1, "/console.log")));

  // 3. VM 2 with the same name reads the file back; its unnamed slot is clean.
  const std::string vm2 = acquire({"mine:/data"});
  ASSERT_FALSE(vm2.empty());
  ExecOut r = ExecIn(*stub, vm2, {"/bin/busybox", "cat", "/data/f"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(absl::StripAsciiWhitespace(r.out), kMarker);
  ExecOut s = ExecIn(*stub, vm2, {"/bin/busybox", "ls", "/scratch/f"});
  EXPECT_NE(s.code, 0) << "an unnamed slot is a fresh private copy: " << s.out;
  release(vm2);

  // 4. The snapshot's clean images never saw a write.
  for (const char* img : {"/volumes/data.img", "/volumes/scratch.img"}) {
    EXPECT_FALSE(absl::StrContains(test_support::ReadWholeFile(snapshot_dir + img), kMarker)) << img;
  }
}

}  // namespace
}  // namespace supermachine
