// File: launch_config_test.cc
// Launch config parsing (flags, JSON) and validation errors for bad input.
#include "worker/vmm/launch_config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/unit/worker/test_kernel.h"

namespace supermachine::vmm {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<CommandLine> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "supermachine-worker");
  return ParseCommandLine(static_cast<int>(args.size()), args.data());
}

TEST(DiskSpec, PathAloneIsReadWrite) {
  auto d = ParseDiskSpec("/a/b.img");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->path, "/a/b.img");
  EXPECT_FALSE(d->read_only);
}

TEST(DiskSpec, RoSuffixAndIdAreParsed) {
  auto d = ParseDiskSpec("/a/b.img,ro,id=layer0");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->read_only);
  EXPECT_EQ(d->id, "layer0");
}

TEST(DiskSpec, UnknownOptionIsAnError) {
  EXPECT_EQ(ParseDiskSpec("/a,rx").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DiskSpec, IdLongerThanVirtioAllowsIsAnError) {
  EXPECT_FALSE(ParseDiskSpec("/a,id=123456789012345678901").ok());
}

TEST(SerialSpec, ParsesEveryForm) {
  EXPECT_EQ(ParseSerialSpec("stdout")->kind, SerialKind::kStdout);
  EXPECT_EQ(ParseSerialSpec("none")->kind, SerialKind::kNone);
  EXPECT_EQ(ParseSerialSpec("file:/x/y")->path, "/x/y");
  EXPECT_EQ(ParseSerialSpec("fd:7")->fd, 7);
}

TEST(SerialSpec, RejectsGarbage) {
  EXPECT_FALSE(ParseSerialSpec("fd:-1").ok());
  EXPECT_FALSE(ParseSerialSpec("tcp:1234").ok());
  EXPECT_FALSE(ParseSerialSpec("file:").ok());
}

TEST(CommandLineFlags, DefaultsAre256MiBOneVcpuStdoutSerial) {
  auto c = Parse({"--kernel", "/k"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->config.mem_mib, 256u);
  EXPECT_EQ(c->config.vcpus, 1u);
  EXPECT_EQ(c->config.serial.kind, SerialKind::kStdout);
  EXPECT_EQ(c->config.cmdline, std::string(kDefaultCmdline));
}

TEST(CommandLineFlags, RepeatedDiskFlagsKeepTheirOrder) {
  auto c = Parse({"--kernel", "/k", "--disk", "/a,ro", "--disk", "/b"});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->config.disks.size(), 2u);
  EXPECT_EQ(c->config.disks[0].path, "/a");
  EXPECT_TRUE(c->config.disks[0].read_only);
  EXPECT_EQ(c->config.disks[1].path, "/b");
}

TEST(CommandLineFlags, UnknownFlagIsAnError) {
  EXPECT_EQ(Parse({"--kernal", "/k"}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CommandLineFlags, NonNumericMemoryIsAnError) {
  EXPECT_FALSE(Parse({"--kernel", "/k", "--mem-mib", "lots"}).ok());
}

TEST(CommandLineFlags, HelpIsReportedNotAnError) {
  auto c = Parse({"--help"});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->help);
  EXPECT_NE(c->help_text.find("--disk"), std::string::npos);
}

TEST(CommandLineFlags, VsockPathAndCid) {
  auto c = Parse({"--vsock", "/run/v.sock", "--vsock-cid", "42"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->config.vsock.path, "/run/v.sock");
  EXPECT_EQ(c->config.vsock.guest_cid, 42u);
  auto d = Parse({});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->config.vsock.path, "");  // No device unless asked for.
  EXPECT_EQ(d->config.vsock.guest_cid, kDefaultVsockCid);
}

TEST(CommandLineFlags, HelpDescribesVsockProtocol) {
  auto c = Parse({"--help"});
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->help_text.find("--vsock PATH"), std::string::npos) << c->help_text;
  EXPECT_NE(c->help_text.find("CONNECT <port>"), std::string::npos);
  EXPECT_NE(c->help_text.find("--vsock-cid"), std::string::npos);
}

TEST(LaunchConfigJson, VsockAsObjectOrPath) {
  auto c = ParseLaunchConfigJson(R"({"vsock": {"path": "/v", "cid": 7}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vsock, (VsockConfig{.path = "/v", .guest_cid = 7}));
  c = ParseLaunchConfigJson(R"({"vsock": "/w"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vsock, (VsockConfig{.path = "/w", .guest_cid = 3}));
  EXPECT_FALSE(ParseLaunchConfigJson(R"({"vsock": {"path": "/v", "port": 1}})").ok());
  EXPECT_FALSE(ParseLaunchConfigJson(R"({"vsock": 5})").ok());
}

TEST(LaunchConfigJson, ParsesAllFields) {
  auto c = ParseLaunchConfigJson(R"({"kernel": "/k", "cmdline": "console=ttyS0",
      "mem_mib": 512, "vcpus": 4, "serial": "file:/s", "rng": false,
      "disks": ["/a,ro", {"path": "/b", "read_only": false, "id": "vol"}]})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->mem_mib, 512u);
  EXPECT_EQ(c->vcpus, 4u);
  EXPECT_FALSE(c->rng);
  ASSERT_EQ(c->disks.size(), 2u);
  EXPECT_EQ(c->disks[1].id, "vol");
  EXPECT_EQ(c->serial.path, "/s");
}

TEST(LaunchConfig, BalloonIsOffByDefaultAndOnWithTheFlagOrJson) {
  auto c = Parse({"--kernel", "/k"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->config.balloon);
  c = Parse({"--kernel", "/k", "--balloon"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->config.balloon);
  auto j = ParseLaunchConfigJson(R"({"balloon": true})");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE(j->balloon);
  EXPECT_FALSE(ParseLaunchConfigJson(R"({"balloon": "yes"})").ok());
}

TEST(LaunchConfig, KsmIsOffByDefaultAndOnWithTheFlagOrJson) {
  auto c = Parse({"--kernel", "/k"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->config.ksm);
  c = Parse({"--kernel", "/k", "--ksm"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->config.ksm);
  auto j = ParseLaunchConfigJson(R"({"ksm": true})");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE(j->ksm);
}

TEST(LaunchConfig, SerialFileIsBoundedByDefault) {
  auto c = Parse({"--kernel", "/k", "--serial", "file:/s"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->config.serial.max_bytes, uint64_t{8} << 20);
}

TEST(LaunchConfig, SerialMaxBytesFromTheFlagOrJsonIsKeptWhateverTheOrder) {
  auto c = Parse({"--kernel", "/k", "--serial-max-bytes", "0", "--serial", "file:/s"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->config.serial.max_bytes, 0u);
  auto j = ParseLaunchConfigJson(R"({"serial_max_bytes": 4096, "serial": "file:/s"})");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->serial.max_bytes, 4096u);
  EXPECT_EQ(j->serial.path, "/s");
}

TEST(LaunchConfigJson, UnknownKeyIsAnError) {
  auto c = ParseLaunchConfigJson(R"({"kernel": "/k", "memory": 5})");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("memory"), absl::string_view::npos);
}

TEST(LaunchConfigJson, WrongTypeIsAnErrorNotAnException) {
  EXPECT_FALSE(ParseLaunchConfigJson(R"({"vcpus": "four"})").ok());
}

TEST(LaunchConfigJson, InvalidJsonIsAnError) {
  EXPECT_FALSE(ParseLaunchConfigJson("{kernel").ok());
}

class ValidateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sm-validate-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    kernel_ = (dir_ / "vmlinux").string();
    testing::WriteBytes(kernel_, testing::MakeElfKernel(testing::PrintOkAndResetCode(),
                                                        0x1000000, true));
    disk_ = (dir_ / "disk.img").string();
    std::ofstream(disk_) << std::string(4096, '\0');
    config_.kernel = kernel_;
  }
  void TearDown() override {
    fs::permissions(dir_, fs::perms::owner_all);
    fs::remove_all(dir_);
  }
  HostLimits Limits() { return {.host_mem_bytes = 8ull << 30, .max_vcpus = 0}; }

  fs::path dir_;
  std::string kernel_;
  std::string disk_;
  LaunchConfig config_;
};

TEST_F(ValidateTest, AcceptsAGoodConfig) {
  config_.disks.push_back({.path = disk_, .read_only = true});
  EXPECT_TRUE(ValidateLaunchConfig(config_, Limits()).ok());
}

TEST_F(ValidateTest, MissingKernelIsNotFoundWithThePath) {
  config_.kernel = (dir_ / "nope").string();
  absl::Status st = ValidateLaunchConfig(config_, Limits());
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(st.message().find("nope"), absl::string_view::npos);
}

TEST_F(ValidateTest, UnsupportedKernelFormatIsInvalidArgument) {
  config_.kernel = disk_;
  EXPECT_EQ(ValidateLaunchConfig(config_, Limits()).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ValidateTest, NoKernelIsAnError) {
  config_.kernel.clear();
  EXPECT_EQ(ValidateLaunchConfig(config_, Limits()).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ValidateTest, MemoryBelowMinimumIsAnError) {
  config_.mem_mib = kMinMemMib - 1;
  absl::Status st = ValidateLaunchConfig(config_, Limits());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("too small"), absl::string_view::npos);
}

TEST_F(ValidateTest, MemoryAtOrAboveHostRamIsResourceExhausted) {
  config_.mem_mib = 8192;
  absl::Status st = ValidateLaunchConfig(config_, Limits());
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("too large"), absl::string_view::npos);
}

TEST_F(ValidateTest, ZeroOrTooManyVcpusIsAnError) {
  config_.vcpus = 0;
  EXPECT_FALSE(ValidateLaunchConfig(config_, Limits()).ok());
  config_.vcpus = 33;
  EXPECT_FALSE(ValidateLaunchConfig(config_, Limits()).ok());
}

TEST_F(ValidateTest, EightVcpusAreAccepted) {
  config_.vcpus = 8;
  EXPECT_TRUE(ValidateLaunchConfig(config_, Limits()).ok());
}

TEST_F(ValidateTest, MissingDiskIsNotFoundWithThePath) {
  config_.disks.push_back({.path = (dir_ / "missing.img").string(), .read_only = true});
  absl::Status st = ValidateLaunchConfig(config_, Limits());
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(st.message().find("missing.img"), absl::string_view::npos);
}

TEST_F(ValidateTest, DiskDirectoryIsRejected) {
  config_.disks.push_back({.path = dir_.string(), .read_only = false});
  EXPECT_FALSE(ValidateLaunchConfig(config_, Limits()).ok());
}

TEST_F(ValidateTest, TooManyDisksIsAnError) {
  for (uint32_t i = 0; i <= kMaxDisks; ++i) {
    config_.disks.push_back({.path = disk_, .read_only = true});
  }
  absl::Status st = ValidateLaunchConfig(config_, Limits());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("disks"), absl::string_view::npos);
}

TEST_F(ValidateTest, VsockPathTooLongForSocketAddressIsAnError) {
  config_.vsock.path = "/" + std::string(kMaxVsockPath, 'v');
  absl::Status st = ValidateLaunchConfig(config_, Limits());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("vsock path"), absl::string_view::npos) << st;
  config_.vsock.path = "/run/v.sock";
  EXPECT_TRUE(ValidateLaunchConfig(config_, Limits()).ok());
}

TEST_F(ValidateTest, ReservedVsockCidIsAnError) {
  config_.vsock = {.path = "/run/v.sock", .guest_cid = 2};
  absl::Status st = ValidateLaunchConfig(config_, Limits());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("reserved"), absl::string_view::npos) << st;
}

TEST_F(ValidateTest, SerialFdThatIsNotOpenIsAnError) {
  config_.serial = {.kind = SerialKind::kFd, .fd = 987};
  EXPECT_FALSE(ValidateLaunchConfig(config_, Limits()).ok());
}

}  // namespace
}  // namespace supermachine::vmm
