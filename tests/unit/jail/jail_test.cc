// File: jail_test.cc
// The jail, entered in a forked child (it needs root, as CI runs unit tests): afterwards the
// child sees only its bind mounts at their host paths (writable ones writable, read-only ones
// not), a pid-only /proc, runs as the given uid/gid with no capabilities and no_new_privs, and
// every descriptor is close-on-exec. Plus the sandbox flag parser.
#include "worker/jail/jail.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/jail/child.h"
#include "worker/jail/flags.h"

namespace supermachine::jail {
namespace {

using testing::RunInChild;
using ::testing::HasSubstr;
using test_support::TempDir;

constexpr uid_t kNobody = 65534;

// "CapEff:\t0000000000000000" etc. from /proc/self/status.
std::string StatusField(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      return line.substr(line.find_first_not_of(" \t", key.size() + 1));
    }
  }
  return "";
}

class Jail : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the jail tests need root (CI runs unit tests as root)";
  }
};

TEST_F(Jail, ChildSeesOnlyItsBindsAndRunsUnprivileged) {
  TempDir host;
  const std::string rw = host.Join("vm-dir");
  const std::string ro_file = host.Join("snapshot-state");
  ASSERT_EQ(mkdir(rw.c_str(), 0755), 0);
  test_support::WriteFileOrDie(ro_file, "state");
  // World-writable on the host, so only the read-only bind can refuse the write inside.
  ASSERT_EQ(chmod(ro_file.c_str(), 0666), 0);
  const std::string jail_dir = host.Join("jail");
  // Opened before the jail, like the worker's disks and RAM file: still usable inside.
  const int kept = open(ro_file.c_str(), O_RDONLY);
  ASSERT_GE(kept, 0);
  auto end = RunInChild([&]() -> int {
    absl::Status st = EnterJail({.jail_dir = jail_dir,
                                 .binds = {{.path = rw, .read_only = false},
                                           {.path = ro_file, .read_only = true},
                                           {.path = "/dev/urandom", .read_only = true}},
                                 .uid = kNobody,
                                 .gid = kNobody});
    if (!st.ok()) {
      std::fprintf(stderr, "EnterJail: %s\n", std::string(st.message()).c_str());
      return 10;
    }
    if (getuid() != kNobody || geteuid() != kNobody || getgid() != kNobody) return 11;
    if (StatusField("CapEff") != "0000000000000000") return 12;
    if (StatusField("CapPrm") != "0000000000000000") return 13;
    if (StatusField("CapBnd") != "0000000000000000") return 14;
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) return 15;
    // The host's tree is gone; only the binds remain, at their host paths.
    if (access("/etc/passwd", F_OK) == 0 || access("/usr/bin", F_OK) == 0) return 16;
    {
      std::ofstream out(rw + "/written-inside");
      out << "ok";
      if (!out.good()) return 17;
    }
    if (open((ro_file).c_str(), O_WRONLY) >= 0 || errno != EROFS) return 18;
    char buf[5] = {};
    if (open(ro_file.c_str(), O_RDONLY) < 0) return 19;
    if (pread(kept, buf, 5, 0) != 5 || std::string(buf, 5) != "state") return 20;
    if (open("/dev/urandom", O_RDONLY) < 0) return 21;
    // The jail's own root is read-only.
    if (mkdir("/new", 0755) == 0 || errno != EROFS) return 22;
    // /proc: our own entries, no other user's processes (pid 1 is root's).
    if (access("/proc/self/status", R_OK) != 0) return 23;
    if (access("/proc/1/status", F_OK) == 0) return 24;
    // Everything inherited is close-on-exec now.
    if ((fcntl(kept, F_GETFD) & FD_CLOEXEC) == 0) return 25;
    return 0;
  });
  close(kept);
  ASSERT_FALSE(end.signaled) << "signal " << end.signal;
  EXPECT_EQ(end.code, 0) << "failed check " << end.code << " (see jail_test.cc)";
  // The writable bind was the host's directory itself.
  EXPECT_EQ(test_support::ReadFileOrDie(rw + "/written-inside"), "ok");
  // The jail's mounts lived in the child's namespace only: the host sees an empty directory.
  EXPECT_TRUE(test_support::ListDir(jail_dir).empty());
}

TEST_F(Jail, RefusesAProcessWithMoreThanOneThread) {
  TempDir host;
  auto end = RunInChild([&]() -> int {
    std::thread t([] { sleep(2); });
    absl::Status st = EnterJail({.jail_dir = host.Join("jail")});
    t.detach();
    return absl::IsFailedPrecondition(st) ? 0 : 1;
  });
  EXPECT_FALSE(end.signaled);
  EXPECT_EQ(end.code, 0);
}

TEST_F(Jail, RootWithoutUidStillLosesEveryCapability) {
  auto end = RunInChild([]() -> int {
    if (!DropPrivileges(std::nullopt, std::nullopt).ok()) return 1;
    if (StatusField("CapEff") != "0000000000000000") return 2;
    // Without CAP_SYS_ADMIN even root cannot mount or unshare any more.
    return unshare(CLONE_NEWNS) == 0 ? 3 : 0;
  });
  EXPECT_FALSE(end.signaled);
  EXPECT_EQ(end.code, 0) << "failed check " << end.code;
}

TEST(SandboxFlags, TakesItsFlagsOutOfArgvAndLeavesTheRest) {
  std::vector<std::string> args = {"worker", "--kernel", "k", "--seccomp=on",  "--jail-dir",
                                   "/run/j", "--uid=1000", "--gid", "1000", "--cgroup=/sys/x",
                                   "--mem-mib", "64"};
  auto f = ExtractSandboxFlags(args, nullptr);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->seccomp, SeccompMode::kKill);
  EXPECT_EQ(f->jail_dir, "/run/j");
  EXPECT_EQ(f->uid, 1000u);
  EXPECT_EQ(f->gid, 1000u);
  EXPECT_EQ(f->cgroup, "/sys/x");
  EXPECT_THAT(args, ::testing::ElementsAre("worker", "--kernel", "k", "--mem-mib", "64"));
}

TEST(SandboxFlags, JailSharesAreAbsoluteRepeatableAndNeedTheJail) {
  std::vector<std::string> args = {"worker", "--jail-dir=/j", "--jail-share=/var/snap/.tmp-1",
                                   "--jail-share", "/srv/out", "--kernel", "k"};
  auto f = ExtractSandboxFlags(args, nullptr);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_THAT(f->jail_shares, ::testing::ElementsAre("/var/snap/.tmp-1", "/srv/out"));
  EXPECT_THAT(args, ::testing::ElementsAre("worker", "--kernel", "k"));
  args = {"worker", "--jail-dir=/j", "--jail-share=relative/dir"};
  EXPECT_THAT(ExtractSandboxFlags(args, nullptr).status().message(), HasSubstr("absolute"));
  args = {"worker", "--jail-share=/srv/out"};
  EXPECT_THAT(ExtractSandboxFlags(args, nullptr).status().message(), HasSubstr("--jail-dir"));
}

TEST(SandboxFlags, EnvironmentSetsTheDefaultAndTheFlagWins) {
  std::vector<std::string> args = {"worker"};
  EXPECT_EQ(ExtractSandboxFlags(args, "on")->seccomp, SeccompMode::kKill);
  EXPECT_EQ(ExtractSandboxFlags(args, "off")->seccomp, SeccompMode::kOff);
  EXPECT_EQ(ExtractSandboxFlags(args, nullptr)->seccomp, kBuiltinSeccompDefault);
  args = {"worker", "--seccomp", "off"};
  EXPECT_EQ(ExtractSandboxFlags(args, "on")->seccomp, SeccompMode::kOff);
  args = {"worker"};
  EXPECT_FALSE(ExtractSandboxFlags(args, "maybe").ok());
}

// Workers are filtered unless asked not to be; only sanitizer builds (whose exit-time leak
// check the filter would kill) start unfiltered.
TEST(SandboxFlags, TheFilterIsOnByDefaultOutsideAsanBuilds) {
#if defined(__SANITIZE_ADDRESS__)
  EXPECT_EQ(kBuiltinSeccompDefault, SeccompMode::kOff);
#else
  EXPECT_EQ(kBuiltinSeccompDefault, SeccompMode::kKill);
#endif
}

TEST(SandboxFlags, RejectsRootIdsAndHalfPairs) {
  std::vector<std::string> args = {"worker", "--jail-dir=/j", "--uid=0", "--gid=5"};
  EXPECT_FALSE(ExtractSandboxFlags(args, nullptr).ok());
  args = {"worker", "--jail-dir=/j", "--uid=5"};
  EXPECT_THAT(ExtractSandboxFlags(args, nullptr).status().message(), HasSubstr("both"));
  args = {"worker", "--uid=5", "--gid=5"};
  EXPECT_THAT(ExtractSandboxFlags(args, nullptr).status().message(), HasSubstr("--jail-dir"));
  args = {"worker", "--seccomp"};
  EXPECT_FALSE(ExtractSandboxFlags(args, nullptr).ok());
}

}  // namespace
}  // namespace supermachine::jail
