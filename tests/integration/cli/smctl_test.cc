// File: smctl_test.cc
// The real smctl against the real supermachined: output of the implemented verbs, the
// daemon's UNIMPLEMENTED message for the rest, and the newcomer errors with their exit codes
// (docs/cli.md, "Errors newcomers meet": daemon not running or dead, socket permission, no
// hardware virtualization, image not found, host port in use, registry unreachable).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "daemon/bake/metadata.h"
#include "daemon/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/daemon/daemon_process.h"
#include "tests/support/net.h"

namespace supermachine::test_support {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class SmctlTest : public ::testing::Test {
 protected:
  void StartDaemon() {
    absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(dir_.path());
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_.emplace(std::move(*d));
  }
  CommandResult Smctl(std::vector<std::string> args) {
    args.insert(args.begin(), {SM_SMCTL_PATH, "--socket", dir_.File("sm.sock")});
    absl::StatusOr<CommandResult> r = RunCommand(args, dir_.path());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : CommandResult{};
  }
  // Records a snapshot and an ended VM in the store before the daemon opens it.
  void SeedStore() {
    std::filesystem::create_directories(dir_.File("state"));
    absl::StatusOr<store::Store> s =
        store::Store::Open(dir_.File("state/store.db"), [] { return int64_t{1'000}; });
    ASSERT_TRUE(s.ok()) << s.status();
    store::SnapshotRecord snap;
    snap.name = "redis";
    snap.path = dir_.File("state/snapshots/redis");
    snap.size_bytes = 12'300'000;
    snap.metadata_json = R"({"image": "redis:7", "image_digest": "sha256:0123456789abcdef"})";
    ASSERT_TRUE(s->PutSnapshot(snap).ok());
    store::VmRecord vm;
    vm.id = "vm-1";
    vm.snapshot_name = "redis";
    vm.state = "starting";
    ASSERT_TRUE(s->JournalVm(vm).ok());
    ASSERT_TRUE(s->EndVm("vm-1", store::EndCause::kKilled, std::nullopt, 9).ok());
  }

  ScratchDir dir_;
  std::optional<DaemonProcess> daemon_;
};

TEST_F(SmctlTest, VersionJsonHasClientAndDaemon) {
  StartDaemon();
  CommandResult r = Smctl({"version", "--json"});
  ASSERT_EQ(r.exit.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["client"], SM_VERSION);
  EXPECT_EQ(j["daemon"]["daemon"], SM_VERSION);
  EXPECT_EQ(j["daemon"]["api"], "supermachine.v1");
}

TEST_F(SmctlTest, VersionTableNamesBoth) {
  StartDaemon();
  CommandResult r = Smctl({"version"});
  ASSERT_EQ(r.exit.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string("Client: smctl ") + SM_VERSION + "\nDaemon: supermachined " +
                       SM_VERSION + " (API supermachine.v1)\n");
}

TEST_F(SmctlTest, HealthJsonReportsServingAndKvmKind) {
  StartDaemon();
  CommandResult r = Smctl({"health", "--json"});
  ASSERT_EQ(r.exit.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["serving"], true);
  EXPECT_THAT(j["kvm"].get<std::string>(), ::testing::AnyOf("hardware", "pvm", "absent"));
}

TEST_F(SmctlTest, ImagesJsonListsStoredSnapshots) {
  SeedStore();
  StartDaemon();
  CommandResult r = Smctl({"images", "--json"});
  ASSERT_EQ(r.exit.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["snapshots"].size(), 1u);
  EXPECT_EQ(j["snapshots"][0]["name"], "redis");
  EXPECT_EQ(j["snapshots"][0]["image"], "redis:7");
}

TEST_F(SmctlTest, ImagesTableHasHeaderAndRow) {
  SeedStore();
  StartDaemon();
  CommandResult r = Smctl({"images"});
  ASSERT_EQ(r.exit.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("NAME    IMAGE     DIGEST                CREATED"));
  EXPECT_THAT(r.out, HasSubstr("redis   redis:7   sha256:0123456789ab"));
  EXPECT_THAT(r.out, HasSubstr("12.3MB"));
}

TEST_F(SmctlTest, PsHidesEndedVmsAndPsAllShowsTheirCause) {
  SeedStore();
  StartDaemon();
  CommandResult running = Smctl({"ps", "--json"});
  CommandResult all = Smctl({"ps", "-a", "--json"});
  ASSERT_EQ(running.exit.code, 0) << running.err;
  ASSERT_EQ(all.exit.code, 0) << all.err;
  EXPECT_EQ(nlohmann::json::parse(running.out)["vms"].size(), 0u);
  nlohmann::json j = nlohmann::json::parse(all.out);
  ASSERT_EQ(j["vms"].size(), 1u);
  EXPECT_EQ(j["vms"][0]["end_cause"], "END_CAUSE_KILLED");
  EXPECT_EQ(j["vms"][0]["signal"], 9);
}

TEST_F(SmctlTest, RmRemovesASnapshotThenReportsNotFound) {
  SeedStore();
  StartDaemon();
  CommandResult first = Smctl({"rm", "redis"});
  CommandResult second = Smctl({"rm", "redis"});
  EXPECT_EQ(first.exit.code, 0) << first.err;
  EXPECT_EQ(first.out, "redis\n");
  EXPECT_EQ(second.exit.code, 3);
  EXPECT_EQ(second.err,
            "smctl: no VM or snapshot named 'redis' (see `smctl ps` and `smctl images`)\n");
}

TEST_F(SmctlTest, RunOfAnUnknownSnapshotSaysHowToGetOne) {
  StartDaemon();
  CommandResult r = Smctl({"run", "-d", "-p", "8080:80", "--name", "web", "redis"});
  EXPECT_EQ(r.exit.code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("smctl: snapshot 'redis' not found"));
  EXPECT_THAT(r.err, HasSubstr("smctl bake IMAGE"));
}

TEST_F(SmctlTest, RunEnvWithoutCommandIsAUsageError) {
  CommandResult r = Smctl({"run", "-e", "A=1", "redis"});
  EXPECT_EQ(r.exit.code, 2);
  EXPECT_THAT(r.err, HasSubstr("fixed when the snapshot is baked"));
}

TEST_F(SmctlTest, ExecAndLogsOfUnknownVmAreNotFoundAndBakeUnimplemented) {
  StartDaemon();
  CommandResult exec = Smctl({"exec", "vm-1", "--", "ls", "-l"});
  CommandResult logs = Smctl({"logs", "-f", "vm-1"});
  CommandResult bake = Smctl({"bake", "--memory", "128", "redis"});
  EXPECT_EQ(exec.exit.code, 3);
  EXPECT_THAT(exec.err, HasSubstr("no running VM 'vm-1'"));
  EXPECT_EQ(logs.exit.code, 3);
  EXPECT_THAT(logs.err, HasSubstr("no running VM 'vm-1'"));
  EXPECT_EQ(bake.exit.code, 5);
  EXPECT_THAT(bake.err, HasSubstr("Bake is not available"));
}

TEST_F(SmctlTest, BadPortFlagIsAUsageErrorBeforeAnyRpc) {
  CommandResult r = Smctl({"run", "-p", "8080", "redis"});
  EXPECT_EQ(r.exit.code, 2);
  EXPECT_THAT(r.err, HasSubstr("-p '8080'"));
}

TEST_F(SmctlTest, NoDaemonSaysNotRunningAndHowToStartIt) {
  CommandResult r = Smctl({"ps"});
  EXPECT_EQ(r.exit.code, 69);
  EXPECT_THAT(r.err, HasSubstr("supermachined is not running (no socket at " + dir_.File("sm.sock")));
  EXPECT_THAT(r.err, HasSubstr("systemctl start supermachined"));
}

TEST_F(SmctlTest, SocketEnvironmentVariableIsUsedWithoutFlag) {
  StartDaemon();
  absl::StatusOr<CommandResult> r = RunCommand(
      {"/usr/bin/env", "SUPERMACHINE_SOCKET=" + dir_.File("sm.sock"), SM_SMCTL_PATH, "version"},
      dir_.path());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit.code, 0) << r->err;
}

TEST_F(SmctlTest, UserOutsideTheSocketGroupIsToldToJoinIt) {
  // Root bypasses socket permissions, so smctl runs as nobody (setpriv, util-linux). The
  // scratch dir is opened for traversal; the socket keeps its 0660 root:root mode.
  ASSERT_EQ(::geteuid(), 0u) << "this test drops to uid 65534 and must start as root";
  StartDaemon();
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  absl::StatusOr<CommandResult> r = RunCommand(
      {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SM_SMCTL_PATH,
       "--socket", dir_.File("sm.sock"), "ps"},
      dir_.path());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit.code, 4) << r->err;
  EXPECT_THAT(r->err, HasSubstr("permission denied on " + dir_.File("sm.sock")));
  EXPECT_THAT(r->err, HasSubstr("add yourself to group root"));
}

TEST_F(SmctlTest, SocketOfADeadDaemonSaysNotRunning) {
  // What `kill -9` leaves: a socket file nobody accepts on.
  const std::string path = dir_.File("sm.sock");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
  CommandResult r = Smctl({"run", "-d", "web"});
  EXPECT_EQ(r.exit.code, 69) << r.err;
  EXPECT_THAT(r.err, HasSubstr("supermachined is not running (" + path +
                               " exists but nothing accepts connections on it)"));
  EXPECT_THAT(r.err, HasSubstr("supermachined &"));
}

// A daemon whose bake pipeline is configured. Bake only hashes the kernel and agent files at
// start, so any readable files do; nothing here boots.
void WriteBakeConfig(const std::string& path, const std::string& extra = "") {
  std::ofstream(path) << R"({"kernel": ")" << SM_SMCTL_PATH << R"(", "guest_agent": ")"
                      << SM_SMCTL_PATH << R"(")" << extra << "}";
}

TEST_F(SmctlTest, RunOfAMissingImageSaysWhatImageMayBe) {
  WriteBakeConfig(dir_.File("config.json"));
  absl::StatusOr<DaemonProcess> d =
      DaemonProcess::Start(dir_.path(), {"--config", dir_.File("config.json")});
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string missing = dir_.File("no-such-layout");
  CommandResult r = Smctl({"run", "-d", "-p", "0:80", "oci-layout:" + missing + ":demo"});
  EXPECT_EQ(r.exit.code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("smctl: oci-layout:" + missing));
  EXPECT_THAT(r.err, HasSubstr("IMAGE is a snapshot name (`smctl images`) or an image ref"));
  EXPECT_THAT(r.err, HasSubstr("oci-layout:DIR[:TAG]"));
}

TEST_F(SmctlTest, UnreachableRegistryIsNotReportedAsADeadDaemon) {
  // Port 1 on loopback refuses at once: the daemon's pull fails UNAVAILABLE while the daemon
  // itself is fine, so smctl prints the daemon's message, not "supermachined … unavailable".
  WriteBakeConfig(dir_.File("config.json"), R"(, "pools": {})");
  absl::StatusOr<DaemonProcess> d =
      DaemonProcess::Start(dir_.path(), {"--config", dir_.File("config.json")});
  ASSERT_TRUE(d.ok()) << d.status();
  CommandResult r = Smctl({"--timeout", "60", "run", "-d", "127.0.0.1:1/demo:latest"});
  EXPECT_NE(r.exit.code, 0);
  EXPECT_THAT(r.err, HasSubstr("127.0.0.1:1"));
  EXPECT_THAT(r.err, Not(HasSubstr("supermachined at")));
  EXPECT_THAT(r.err, Not(HasSubstr("is not running")));
  EXPECT_THAT(r.err, Not(HasSubstr("likely cause")));  // not a boot failure
}

TEST_F(SmctlTest, HostPortInUseIsRefusedBeforeAcquire) {
  // Something listens on a loopback port; `run -p PORT:80` must say so at once, before the
  // daemon bakes or restores anything (the snapshot does not even exist).
  test_support::LoopbackListener busy = test_support::ListenOnLoopback(1);
  const std::string port = std::to_string(busy.port);
  StartDaemon();
  CommandResult r = Smctl({"run", "-d", "-p", port + ":80", "web"});
  busy.fd.Reset();
  EXPECT_EQ(r.exit.code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("smctl: host port 127.0.0.1:" + port + " is already in use"));
  EXPECT_THAT(r.err, HasSubstr("-p 0:80 for a free one"));
  EXPECT_THAT(r.err, Not(HasSubstr("not found")));  // refused before any Acquire
}

TEST_F(SmctlTest, HostPortBusyHereIsNotCheckedForARemoteDaemon) {
  // With --host the forwarded port is the remote host's: a port busy on this machine must not
  // stop the run; the error is about reaching the remote daemon instead.
  test_support::LoopbackListener busy = test_support::ListenOnLoopback(1);
  const std::string port = std::to_string(busy.port);
  std::ofstream(dir_.File("token")) << "secret-token\n";
  CommandResult r = Smctl({"--host", "127.0.0.1:1", "--token-file", dir_.File("token"), "run",
                           "-d", "-p", port + ":80", "web"});
  busy.fd.Reset();
  EXPECT_NE(r.exit.code, 0) << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("already in use"))) << r.err;
  EXPECT_THAT(r.err, HasSubstr("127.0.0.1:1")) << r.err;
}

TEST_F(SmctlTest, FailedRunExplainsAHostWithoutHardwareVirtualization) {
  // A snapshot whose restore fails (the "worker" is /bin/false). On a host whose KVM is PVM
  // or absent — as on our CI machines — smctl adds the daemon's KVM diagnosis under the
  // daemon's error; on hardware KVM it adds nothing.
  SeedStore();
  std::filesystem::create_directories(dir_.File("state/snapshots/redis"));
  std::ofstream(dir_.File("config.json")) << R"({"pools": {"redis": {"acquire_timeout_s": 20}}})";
  absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(
      dir_.path(), {"--config", dir_.File("config.json"), "--worker-binary", "/bin/false"});
  ASSERT_TRUE(d.ok()) << d.status();
  CommandResult health = Smctl({"health", "--json"});
  ASSERT_EQ(health.exit.code, 0) << health.err;
  const std::string kvm = nlohmann::json::parse(health.out)["kvm"];
  CommandResult r = Smctl({"run", "-d", "redis"});
  EXPECT_EQ(r.exit.code, 1) << r.err;  // the snapshot exists; its restore failed
  if (kvm == "hardware") {
    EXPECT_THAT(r.err, Not(HasSubstr("likely cause")));
  } else {
    EXPECT_THAT(r.err, HasSubstr("likely cause: this host"));
    EXPECT_THAT(r.err, HasSubstr(kvm == "pvm" ? "KVM is PVM" : "no usable hardware virtualization"));
    EXPECT_THAT(r.err, HasSubstr("./deploy/quickstart.sh"));
  }
}

// Named volumes (docs/volumes.md) as smctl shows them. A volume held by a VM whose worker did
// not survive the daemon restart is free again; rm deletes the file; a path the snapshot has no
// volume at is refused naming the paths it has, before any restore.
TEST_F(SmctlTest, VolumeLsAndRmAndRunWithAPathWithoutASlot) {
  SeedStore();
  {
    absl::StatusOr<store::Store> s =
        store::Store::Open(dir_.File("state/store.db"), [] { return int64_t{2'000}; });
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE(s->CreateVolume({.name = "db", .path = dir_.File("state/volumes/db.ext4"),
                                 .size_bytes = 16 << 20}).ok());
    ASSERT_TRUE(s->JournalVm({.id = "vm-gone", .snapshot_name = "redis"}).ok());
    ASSERT_TRUE(s->AttachVolume("db", "vm-gone", "/data").ok());
  }
  std::filesystem::create_directories(dir_.File("state/volumes"));
  { std::ofstream(dir_.File("state/volumes/db.ext4")) << "ext4"; }
  // The snapshot's metadata declares one volume slot, at /data.
  bake::SnapshotMetadata md;
  md.name = "redis";
  const image::Digest d = *image::Digest::Parse("sha256:" + std::string(64, 'a'));
  md.image_digest = md.cheap_key = md.delta_key = md.bake_key = md.kernel_digest =
      md.agent_digest = d;
  md.launch.argv = {"redis-server"};
  md.readiness = *bake::ParseReadiness("parked");
  md.volumes = {{.name = "data", .guest_path = "/data", .size_bytes = 16 << 20}};
  std::filesystem::create_directories(dir_.File("state/snapshots/redis"));
  ASSERT_TRUE(bake::WriteMetadata(dir_.File("state/snapshots/redis"), md).ok());
  StartDaemon();

  CommandResult ls = Smctl({"volume", "ls", "--json"});
  ASSERT_EQ(ls.exit.code, 0) << ls.err;
  nlohmann::json j = nlohmann::json::parse(ls.out);
  ASSERT_EQ(j["volumes"].size(), 1u);
  EXPECT_EQ(j["volumes"][0]["name"], "db");
  EXPECT_EQ(j["volumes"][0]["attached_vm"], "") << "its VM did not survive the restart";
  CommandResult table = Smctl({"volume", "ls"});
  EXPECT_THAT(table.out, StartsWith("NAME   SIZE     CREATED"));

  CommandResult run = Smctl({"run", "-d", "-v", "db:/x", "redis"});
  EXPECT_EQ(run.exit.code, 2) << run.err;
  EXPECT_THAT(run.err, HasSubstr("snapshot 'redis' declares volumes at /data; bake with -v "
                                 "NAME:/x to have one at /x"));
  CommandResult bad = Smctl({"run", "-d", "-v", "no/slash:/data", "redis"});
  EXPECT_EQ(bad.exit.code, 2) << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("volume name 'no/slash' is invalid"));

  CommandResult rm = Smctl({"volume", "rm", "db"});
  EXPECT_EQ(rm.exit.code, 0) << rm.err;
  EXPECT_EQ(rm.out, "db\n");
  EXPECT_FALSE(std::filesystem::exists(dir_.File("state/volumes/db.ext4")));
  CommandResult again = Smctl({"volume", "rm", "db"});
  EXPECT_EQ(again.exit.code, 3) << again.err;
  EXPECT_THAT(again.err, HasSubstr("volume 'db' not found"));
}

TEST_F(SmctlTest, HelpWorksOnEveryVerb) {
  for (const char* verb :
       {"run", "bake", "exec", "ps", "images", "rm", "logs", "health", "version", "volume"}) {
    CommandResult r = Smctl({verb, "--help"});
    EXPECT_EQ(r.exit.code, 0) << verb << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("Usage")) << verb;
  }
}

}  // namespace
}  // namespace supermachine::test_support
