// File: docker_config_test.cc
// Credentials from config.json: base64 auth, username/password, Docker Hub aliases.
#include "daemon/image/docker_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/image/testing/temp_dir.h"

namespace supermachine::image {
namespace {

// "alice:s3cr:et" base64
constexpr char kAliceAuth[] = "YWxpY2U6czNjcjpldA==";

TEST(DockerConfig, DecodesBase64AuthSplittingAtTheFirstColon) {
  auto c = FindDockerCredentials(std::string(R"({"auths":{"ghcr.io":{"auth":")") + kAliceAuth + R"("}}})", "ghcr.io");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->username, "alice");
  EXPECT_EQ((*c)->password, "s3cr:et");
}

TEST(DockerConfig, UsernamePasswordFields) {
  auto c = FindDockerCredentials(R"({"auths":{"https://quay.io":{"username":"bob","password":"pw"}}})", "quay.io");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->username, "bob");
  EXPECT_EQ((*c)->password, "pw");
}

TEST(DockerConfig, LegacyDockerHubKeyMatchesRegistry1) {
  auto c = FindDockerCredentials(std::string(R"({"auths":{"https://index.docker.io/v1/":{"auth":")") + kAliceAuth + R"("}}})",
                                 "registry-1.docker.io");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->username, "alice");
}

TEST(DockerConfig, DockerIoKeyMatchesRegistry1) {
  auto c = FindDockerCredentials(R"({"auths":{"docker.io":{"username":"u","password":"p"}}})", "registry-1.docker.io");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->has_value());
}

TEST(DockerConfig, HostWithPortMustMatchExactly) {
  auto c = FindDockerCredentials(R"({"auths":{"localhost:5000":{"username":"u","password":"p"}}})", "localhost:5001");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->has_value());
}

TEST(DockerConfig, OtherRegistriesDoNotMatchDockerHub) {
  auto c = FindDockerCredentials(R"({"auths":{"ghcr.io":{"username":"u","password":"p"}}})", "registry-1.docker.io");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->has_value());
}

TEST(DockerConfig, BadBase64IsAnErrorNamingTheEntry) {
  auto c = FindDockerCredentials(R"({"auths":{"ghcr.io":{"auth":"!!!"}}})", "ghcr.io");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), ::testing::HasSubstr("auths['ghcr.io']"));
}

TEST(DockerConfig, AuthWithoutColonIsAnError) {
  // "nocolon"
  auto c = FindDockerCredentials(R"({"auths":{"ghcr.io":{"auth":"bm9jb2xvbg=="}}})", "ghcr.io");
  EXPECT_THAT(std::string(c.status().message()), ::testing::HasSubstr("username:password"));
}

TEST(DockerConfig, PathPrefersDockerConfigEnv) {
  EXPECT_EQ(DockerConfigPath("/etc/dc", "/home/u"), "/etc/dc/config.json");
  EXPECT_EQ(DockerConfigPath("", "/home/u"), "/home/u/.docker/config.json");
}

TEST(DockerConfig, MissingFileMeansNoCredentials) {
  testing::TempDir dir;
  auto c = LoadDockerCredentials(dir.Join("none.json"), "ghcr.io");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->has_value());
}

TEST(DockerConfig, LoadsFromFile) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.Join("config.json"), R"({"auths":{"127.0.0.1:5000":{"username":"u","password":"p"}}})");
  auto c = LoadDockerCredentials(dir.Join("config.json"), "127.0.0.1:5000");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->password, "p");
}

TEST(Base64, RoundTrips) {
  EXPECT_EQ(Base64Encode("alice:s3cr:et"), kAliceAuth);
  EXPECT_EQ(*Base64Decode(kAliceAuth), "alice:s3cr:et");
  EXPECT_EQ(*Base64Decode("YQ"), "a");
}

}  // namespace
}  // namespace supermachine::image
