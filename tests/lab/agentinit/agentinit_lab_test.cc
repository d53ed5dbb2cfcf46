// File: agentinit_lab_test.cc
// Boots the guest agent as PID 1 the way bake will (docs/guest-boot.md): root=/dev/vda is a
// delta squashfs holding the agent and launch.json; two squashfs layer disks made from tars by
// sm_layer's converter, found by virtio serial. The busybox workload prints what it sees on the
// console; the test checks overlay shadowing and whiteouts, uid/gids, env, cwd, hostname, lo,
// and the exit report. Runs inside the KVM lab (tests/lab/run), all boots in one lab run.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "daemon/layer/converter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/layer/tar_builder.h"
#include "tests/lab/support/guest_test.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace {

namespace fs = std::filesystem;
using supermachine::lab::ReadFile;
namespace lt = supermachine::layer::testing;
using supermachine::base::ChildProcess;
using supermachine::base::ExitStatus;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

// The workload: one `check:` line per property, then exit 3.
constexpr char kScript[] =
    "echo \"check: shadow=$(cat /shadowed.txt)\"; "
    "if [ -e /deleted.txt ]; then echo 'check: deleted=present'; "
    "else echo 'check: deleted=gone'; fi; "
    "echo \"check: ids=$(id -u):$(id -g):$(id -G)\"; "
    "echo \"check: env=$GREETING home=$HOME cwd=$(pwd)\"; "
    "echo \"check: hostname=$(hostname)\"; "
    "echo \"check: lo_flags=$(cat /sys/class/net/lo/flags)\"; "
    "echo \"check: rootfs=$(grep -m1 ' / ' /proc/mounts | cut -d' ' -f3)\"; "
    "echo written > /tmp/w && echo \"check: tmp=$(cat /tmp/w)\"; "
    "echo \"check: pts=$(grep -c ' /dev/pts devpts' /proc/mounts)\"; "
    "exit 3";

class AgentInitLab : public supermachine::lab::GuestTest {
 protected:
  AgentInitLab() : GuestTest("sm-agentinit-lab") {}

  // Writes `entries` as a tar and converts it to squashfs with the bake's converter.
  std::string Squashfs(const std::string& name, const std::vector<lt::TarEntry>& entries) {
    std::string tar = (dir_ / (name + ".tar")).string();
    std::string out = (dir_ / (name + ".sqfs")).string();
    absl::Status st = lt::WriteTar(tar, entries);
    EXPECT_TRUE(st.ok()) << st;
    auto stats = supermachine::layer::ConvertLayer(tar, out, {.num_workers = 1});
    EXPECT_TRUE(stats.ok()) << stats.status();
    return out;
  }

  // Bottom layer: busybox with the applets the script uses, users, a file to shadow and one
  // to delete.
  std::string LowerLayer() {
    std::vector<lt::TarEntry> e = {
        lt::Dir("bin"), lt::File("bin/busybox", ReadFile("/bin/busybox"), {.perm = 0755})};
    for (const char* applet :
         {"sh", "cat", "id", "hostname", "grep", "cut", "echo", "pwd", "kill", "sleep"}) {
      e.push_back(lt::Symlink(absl::StrCat("bin/", applet), "busybox"));
    }
    for (const char* d : {"proc", "sys", "dev", "tmp", "run", "etc", "home"}) {
      e.push_back(lt::Dir(d));
    }
    e.push_back(lt::Dir("home/app", {.uid = 1000, .gid = 1000}));
    e.push_back(lt::Dir("srv", {.uid = 1000, .gid = 1000}));
    e.push_back(lt::File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                                       "app:x:1000:1000:App:/home/app:/bin/sh\n"));
    e.push_back(lt::File("etc/group", "root:x:0:\napp:x:1000:\nextra:x:2000:app\n"));
    e.push_back(lt::File("shadowed.txt", "lower\n"));
    e.push_back(lt::File("deleted.txt", "doomed\n"));
    return Squashfs("layer0", e);
  }

  // Top layer: shadows one file and whites out another (OCI `.wh.` form).
  std::string UpperLayer() {
    return Squashfs("layer1", {lt::File("shadowed.txt", "upper\n"), lt::File(".wh.deleted.txt", "")});
  }

  // The delta bake makes: the agent, optionally launch.json, and the boot root's mount points.
  std::string Delta(const std::string& launch_json) {
    std::vector<lt::TarEntry> e = {
        lt::Dir(".supermachine"),
        lt::File(".supermachine/agent", ReadFile(SM_GUEST_AGENT_BIN), {.perm = 0755})};
    if (!launch_json.empty()) {
      e.push_back(lt::File(".supermachine/launch.json", launch_json));
    }
    for (const char* d : {"proc", "sys", "dev", "tmp", "run"}) {
      e.push_back(lt::Dir(d));
    }
    return Squashfs("delta", e);
  }

  // An empty ext4 image (no journal, so what the guest synced is readable with debugfs at
  // once, without a journal replay).
  std::string Ext4(const std::string& name) {
    std::string path = (dir_ / name).string();
    auto child = ChildProcess::Spawn(
        {.argv = {"mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal", path, "16M"}});
    EXPECT_TRUE(child.ok()) << child.status();
    auto st = child->Wait();
    EXPECT_TRUE(st.ok() && st->success()) << "mke2fs failed";
    return path;
  }

  // A file's content inside an ext4 image, via debugfs (no mount needed).
  std::string Ext4File(const std::string& image, const std::string& path) {
    fs::path out = dir_ / "debugfs.out";
    supermachine::base::UniqueFd fd(
        open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    auto child = ChildProcess::Spawn(
        {.argv = {"debugfs", "-R", "cat " + path, image}, .stdout_fd = fd.get(), .stderr_fd = -1});
    EXPECT_TRUE(child.ok()) << child.status();
    auto st = child->Wait();
    EXPECT_TRUE(st.ok() && st->success()) << "debugfs failed";
    return ReadFile(out);
  }

  struct Result {
    ExitStatus exit;
    std::string serial;
    std::string stderr_text;
  };

  Result Boot(const std::vector<std::string>& disks, const std::string& extra_cmdline) {
    fs::path serial = dir_ / "serial.log";
    fs::path err = dir_ / "stderr.log";
    supermachine::base::UniqueFd err_fd(
        open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    std::vector<std::string> argv = {SM_WORKER_BIN, "--serial", "file:" + serial.string(),
                                     "--kernel", KernelDir() + "/vmlinux", "--mem-mib", "256"};
    for (const std::string& d : disks) {
      argv.push_back("--disk");
      argv.push_back(d);
    }
    argv.push_back("--cmdline");
    argv.push_back(absl::StrCat("console=ttyS0 reboot=t panic=-1 quiet root=/dev/vda "
                                "rootfstype=squashfs ro init=/.supermachine/agent ",
                                extra_cmdline));
    auto child = ChildProcess::Spawn({.argv = argv, .stderr_fd = err_fd.get()});
    EXPECT_TRUE(child.ok()) << child.status();
    Result r;
    auto st = child->WaitFor(absl::Seconds(240));
    if (!st.ok()) {
      ADD_FAILURE() << "worker did not finish within 240 s; serial tail:\n" << ReadFile(serial);
      st = child->Terminate(absl::Seconds(5));
    }
    r.exit = st.ok() ? *st : ExitStatus{.signaled = true, .signal = SIGKILL};
    r.serial = ReadFile(serial);
    r.stderr_text = ReadFile(err);
    // The agent's own lines, for the log of the lab run (startup time included).
    std::istringstream lines(r.serial);
    for (std::string line; std::getline(lines, line);) {
      if (line.find("supermachine-guest-agent:") != std::string::npos) {
        std::printf("  guest: %s\n", line.c_str());
      }
    }
    return r;
  }
};

TEST_F(AgentInitLab, WorkloadRunsOnOverlayOfLayerDisksAsConfiguredAndExitIsReported) {
  nlohmann::json launch = {
      {"version", 1},
      {"argv", {"/bin/sh", "-c", kScript}},
      {"env", {"GREETING=hello-agent"}},
      {"cwd", "/srv"},
      {"user", "app"},
      {"hostname", "agentinit-lab"},
      {"layers", {"layer0", "layer1"}},
      {"on_exit", "poweroff"},
  };
  std::string delta = Delta(launch.dump());
  Result r = Boot({delta + ",ro,id=delta", LowerLayer() + ",ro,id=layer0",
                   UpperLayer() + ",ro,id=layer1"},
                  "");
  EXPECT_THAT(r.serial, ContainsRegex("supermachine-guest-agent: ready uptime_ms=[0-9.]+ "
                                      "startup_ms=[0-9.]+"))
      << r.serial << r.stderr_text;
  EXPECT_THAT(r.serial, HasSubstr("check: shadow=upper"));
  EXPECT_THAT(r.serial, HasSubstr("check: deleted=gone"));
  EXPECT_THAT(r.serial, HasSubstr("check: ids=1000:1000:1000 2000"));
  EXPECT_THAT(r.serial, HasSubstr("check: env=hello-agent home=/home/app cwd=/srv"));
  EXPECT_THAT(r.serial, HasSubstr("check: hostname=agentinit-lab"));
  // IFF_UP is bit 0 of the flags sysfs prints in hex.
  EXPECT_THAT(r.serial, ContainsRegex("check: lo_flags=0x[0-9a-f]*[13579bdf]\r?\n"));
  EXPECT_THAT(r.serial, HasSubstr("check: rootfs=overlay"));
  EXPECT_THAT(r.serial, HasSubstr("check: tmp=written"));
  EXPECT_THAT(r.serial, HasSubstr("check: pts=1"));
  EXPECT_THAT(r.serial, HasSubstr("supermachine-guest-agent: workload exited code=3"));
  EXPECT_EQ(r.exit.ToString(), "exited 0") << r.stderr_text << r.serial;
}

// The inline form for small tests: no launch.json in the delta, the config base64 on the
// kernel command line, disks left at the worker's default ids (disk0, disk1, ...).
TEST_F(AgentInitLab, CmdlineConfigWithDefaultDiskIdsReportsExecFailureAs127) {
  std::string delta = Delta("");
  std::string config = R"({"argv": ["/bin/no-such-program"], "layers": ["disk1"],
                           "on_exit": "poweroff"})";
  Result r = Boot({delta + ",ro", LowerLayer() + ",ro"},
                  "supermachine.launch=" + absl::Base64Escape(config));
  EXPECT_THAT(r.serial, HasSubstr("config=cmdline")) << r.serial << r.stderr_text;
  EXPECT_THAT(r.serial, HasSubstr("exec /bin/no-such-program: No such file or directory"));
  EXPECT_THAT(r.serial, HasSubstr("supermachine-guest-agent: workload exited code=127"));
  EXPECT_EQ(r.exit.ToString(), "exited 0") << r.stderr_text << r.serial;
}

// Writable disks: the root's changes land on an ext4 upper disk and a volume is mounted where
// the config says. Also: SIGTERM sent to PID 1 reaches the workload (its trap runs).
TEST_F(AgentInitLab, UpperAndVolumeDisksKeepWritesAndSigtermToPid1ReachesWorkload) {
  nlohmann::json launch = {
      {"argv",
       {"/bin/sh", "-c",
        "echo kept > /persisted.txt; echo vol > /data/v.txt; "
        "trap 'echo check: got-term; exit 5' TERM; kill -TERM 1; sleep 60 & wait $!"}},
      {"layers", {"layer0"}},
      {"upper", "disk:rootrw"},
      {"volumes", {{{"disk", "vol0"}, {"path", "/data"}}}},
      {"on_exit", "poweroff"},
  };
  std::string upper = Ext4("upper.img");
  std::string volume = Ext4("vol.img");
  Result r = Boot({Delta(launch.dump()) + ",ro,id=delta", LowerLayer() + ",ro,id=layer0",
                   upper + ",rw,id=rootrw", volume + ",rw,id=vol0"},
                  "");
  EXPECT_THAT(r.serial, HasSubstr("check: got-term")) << r.serial << r.stderr_text;
  EXPECT_THAT(r.serial, HasSubstr("supermachine-guest-agent: workload exited code=5"));
  EXPECT_EQ(r.exit.ToString(), "exited 0") << r.stderr_text << r.serial;
  EXPECT_EQ(Ext4File(upper, "/upper/persisted.txt"), "kept\n");
  EXPECT_EQ(Ext4File(volume, "/v.txt"), "vol\n");
}

}  // namespace
