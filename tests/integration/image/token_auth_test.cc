// File: token_auth_test.cc
// Bearer-token auth end to end: docker-registry configured for token auth, a token server in
// the test signing JWTs, an image pushed by skopeo through that flow, pulled by our client.
#include <filesystem>
#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/image/pull.h"
#include "tests/integration/image/local_registry.h"
#include "tests/integration/image/token_server.h"
#include "tests/unit/image/testing/image_builder.h"
#include "tests/unit/image/testing/temp_dir.h"

namespace supermachine::image {
namespace {

using ::testing::HasSubstr;

constexpr char kUser[] = "robot";
constexpr char kPassword[] = "t0ken-pass";

class TokenAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tokens = testing::TokenServer::Start(dir_.path(), kUser, kPassword, "sm-test-registry", "sm-test-issuer");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = *std::move(tokens);
    std::filesystem::create_directories(dir_.Join("registry"));
    auto reg = testing::LocalRegistry::Start(
        {.dir = dir_.Join("registry"),
         .token_auth = testing::LocalRegistry::Options::TokenAuth{
             .realm = tokens_->realm(), .service = "sm-test-registry", .issuer = "sm-test-issuer",
             .root_cert_bundle = tokens_->cert_path()}});
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = *std::move(reg);
    image_ = testing::BuildImage(HostPlatform(), {{{"hello", "token world"}}}, {"/hello"});
    testing::LayoutWriter layout(dir_.Join("layout"));
    layout.PutImage(image_);
    image_.manifest.annotations["org.opencontainers.image.ref.name"] = "v1";
    layout.WriteIndex({image_.manifest});
    auto pushed = testing::RunTool({"skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                                    "--preserve-digests", "--dest-creds", std::string(kUser) + ":" + kPassword,
                                    "oci:" + dir_.Join("layout") + ":v1",
                                    "docker://" + registry_->host() + "/test/tok:v1"},
                                   dir_.path());
    ASSERT_TRUE(pushed.ok()) << pushed.status() << "\nregistry log:\n" << registry_->log();
    auto store = BlobStore::Open(dir_.Join("cache"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::make_unique<BlobStore>(*std::move(store));
  }

  absl::StatusOr<PulledImage> Pull(RegistryClient& client) {
    return PullImage(*ParseSourceSpec(registry_->host() + "/test/tok:v1"),
                     PullContext{.store = store_.get(), .registry = &client});
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::TokenServer> tokens_;
  std::unique_ptr<testing::LocalRegistry> registry_;
  testing::BuiltImage image_;
  std::unique_ptr<BlobStore> store_;
};

TEST_F(TokenAuth, PullsWithATokenFetchedOnceUsingConfigCredentials) {
  testing::WriteFileOrDie(dir_.Join("docker/config.json"),
                          R"({"auths":{")" + registry_->host() + R"(":{"username":"robot","password":"t0ken-pass"}}})");
  RegistryClient client({.docker_config_path = dir_.Join("docker/config.json")});
  const int issued_before = tokens_->tokens_issued();
  auto pulled = Pull(client);
  ASSERT_TRUE(pulled.ok()) << pulled.status() << "\nregistry log:\n" << registry_->log();
  EXPECT_EQ(pulled->image.manifest_digest, image_.manifest.digest);
  EXPECT_EQ(testing::ReadFileOrDie(pulled->layer_paths[0]), image_.layer_blobs[0]);
  EXPECT_EQ(client.stats().token_fetches, 1);
  EXPECT_EQ(tokens_->tokens_issued(), issued_before + 1);
}

TEST_F(TokenAuth, TokenServerRefusingAnonymousIsUnauthenticated) {
  RegistryClient client({});
  auto pulled = Pull(client);
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("refused anonymous access"));
}

TEST_F(TokenAuth, WrongPasswordIsUnauthenticatedNamingTheUser) {
  RegistryClient client({.credentials = {{registry_->host(), Credentials{kUser, "nope"}}}});
  auto pulled = Pull(client);
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("user 'robot'"));
}

}  // namespace
}  // namespace supermachine::image
