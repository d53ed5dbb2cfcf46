// Delta layer builder: what the guest boots from (docs/guest-boot.md), read back with
// daemon/layer's squashfs reader.
#include "daemon/bake/delta.h"

#include <dirent.h>
#include <sys/stat.h>

#include <fstream>

#include "daemon/layer/squashfs_reader.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/temp_dir.h"

namespace supermachine::bake {
namespace {

using ::supermachine::test_support::TempDir;

void WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  std::ofstream(path) << data;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

class DeltaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_.Join("agent"), "\x7f" "ELF fake agent", 0755);
    WriteFile(dir_.Join("secret"), "s3cret", 0600);
    ::mkdir(dir_.Join("cache").c_str(), 0755);
    content_.agent_path = dir_.Join("agent");
    content_.launch = {.argv = {"/bin/httpd", "-f"}, .env = {"PATH=/bin"}, .workdir = "/srv",
                       .user = "www", .hostname = "web"};
    content_.layer_count = 2;
    content_.files = {{.host_path = dir_.Join("secret"), .guest_path = "/etc/app/key", .mode = 0600}};
  }

  std::vector<std::string> CacheEntries() {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir_.Join("cache").c_str());
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') {
        out.push_back(e->d_name);
      }
    }
    ::closedir(d);
    return out;
  }

  TempDir dir_;
  DeltaContent content_;
  image::Digest key_ = *image::Digest::Parse("sha256:" + std::string(64, 'a'));
};

TEST_F(DeltaTest, HoldsAgentLaunchConfigHostnameExtraFilesAndMountPoints) {
  auto built = GetOrBuildDelta(content_, key_, dir_.Join("cache"));
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_FALSE(built->cache_hit);
  auto tree = layer::ReadSquashfsTree(built->path, {});
  ASSERT_TRUE(tree.ok()) << tree.status();

  const layer::FileEntry& agent = tree->at("/.supermachine/agent");
  EXPECT_EQ(agent.permissions, 0755u);
  EXPECT_EQ(agent.content, "\x7f" "ELF fake agent");
  EXPECT_EQ(tree->at("/etc/hostname").content, "web\n");
  EXPECT_EQ(tree->at("/etc/app/key").content, "s3cret");
  EXPECT_EQ(tree->at("/etc/app/key").permissions, 0600u);
  EXPECT_EQ(tree->at("/etc/app").type, layer::FileType::kDirectory);
  for (const char* d : {"/proc", "/sys", "/dev", "/run", "/tmp"}) {
    ASSERT_EQ(tree->count(d), 1u) << d;
    EXPECT_EQ(tree->at(d).type, layer::FileType::kDirectory) << d;
  }
  EXPECT_EQ(tree->at("/tmp").permissions, 01777u);

  auto launch = nlohmann::json::parse(tree->at("/.supermachine/launch.json").content);
  EXPECT_EQ(launch["version"], 1);
  EXPECT_EQ(launch["argv"], nlohmann::json({"/bin/httpd", "-f"}));
  EXPECT_EQ(launch["cwd"], "/srv");
  EXPECT_EQ(launch["user"], "www");
  EXPECT_EQ(launch["hostname"], "web");
  EXPECT_EQ(launch["layers"], nlohmann::json({"l0", "l1"}));
  EXPECT_EQ(launch["on_exit"], "stay");
  EXPECT_EQ(launch["start"], "boot");
}

TEST_F(DeltaTest, ParkedLaunchJsonStartsOnRestoreAndListsVolumeDisks) {
  DeltaContent c = content_;
  c.park = true;
  c.volumes = {*ParseVolume("data:/var/data:16M"), *ParseVolume("logs:/logs")};
  auto launch = nlohmann::json::parse(LaunchJson(c));
  EXPECT_EQ(launch["start"], "restore");
  EXPECT_EQ(launch["volumes"], nlohmann::json::parse(
                                   R"([{"disk":"v0","path":"/var/data"},{"disk":"v1","path":"/logs"}])"));
}

TEST_F(DeltaTest, SecondCallIsACacheHitAndNoTempFilesRemain) {
  auto first = GetOrBuildDelta(content_, key_, dir_.Join("cache"));
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = GetOrBuildDelta(content_, key_, dir_.Join("cache"));
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->cache_hit);
  EXPECT_EQ(second->path, first->path);
  EXPECT_EQ(CacheEntries().size(), 1u);
}

TEST_F(DeltaTest, LayerCountIsPartOfTheCacheName) {
  auto two = GetOrBuildDelta(content_, key_, dir_.Join("cache"));
  content_.layer_count = 3;
  auto three = GetOrBuildDelta(content_, key_, dir_.Join("cache"));
  ASSERT_TRUE(two.ok() && three.ok());
  EXPECT_NE(two->path, three->path);
  EXPECT_FALSE(three->cache_hit);
}

TEST_F(DeltaTest, ExtraFileUnderTheAgentDirIsRefusedAndLeavesNothing) {
  content_.files.push_back({.host_path = dir_.Join("secret"), .guest_path = "/.supermachine/agent"});
  auto built = GetOrBuildDelta(content_, key_, dir_.Join("cache"));
  EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(built.status().message().find("/.supermachine is reserved"), std::string::npos);
  EXPECT_TRUE(CacheEntries().empty());
}

TEST_F(DeltaTest, MissingAgentFailsWithItsPath) {
  content_.agent_path = dir_.Join("nope");
  auto built = GetOrBuildDelta(content_, key_, dir_.Join("cache"));
  EXPECT_EQ(built.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(built.status().message().find(dir_.Join("nope")), std::string::npos);
  EXPECT_TRUE(CacheEntries().empty());
}

TEST(LaunchJsonTest, VolumesGetDiskIdsInOrder) {
  DeltaContent c;
  c.launch = {.argv = {"x"}, .hostname = "h"};
  c.volumes = {{.name = "a", .guest_path = "/data"}, {.name = "b", .guest_path = "/logs"}};
  auto j = nlohmann::json::parse(LaunchJson(c));
  EXPECT_EQ(j["volumes"], nlohmann::json::parse(
                              R"([{"disk":"v0","path":"/data"},{"disk":"v1","path":"/logs"}])"));
  EXPECT_EQ(j["layers"], nlohmann::json::array());
}

}  // namespace
}  // namespace supermachine::bake
