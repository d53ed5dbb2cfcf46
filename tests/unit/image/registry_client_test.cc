// File: registry_client_test.cc
// The registry client and registry source against an in-process fake registry (loopback):
// auth flows, retries, verification, error codes, caches and pull policies.
#include "daemon/image/registry_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/image/pull.h"
#include "tests/unit/image/testing/fake_clock.h"
#include "tests/unit/image/testing/fake_registry.h"
#include "tests/unit/image/testing/temp_dir.h"

namespace supermachine::image {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Two layers: base with /bin/sh, top with /etc/motd.
testing::BuiltImage TwoLayerImage(const Platform& platform) {
  return testing::BuildImage(platform, {{{"bin/", ""}, {"bin/sh", "#!sh " + platform.ToString()}},
                                        {{"etc/", ""}, {"etc/motd", "hello"}}},
                             {"/bin/sh"});
}

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest()
      : store_(*BlobStore::Open(dir_.Join("cache"))),
        refs_(dir_.Join("cache/refs"), &clock_, absl::Seconds(60)),
        image_(TwoLayerImage(HostPlatform())) {
    registry_.AddImage("team/app", "v1", image_);
  }

  RegistryClientOptions Options() {
    return RegistryClientOptions{.clock = &clock_,
                                 .sleep = [this](absl::Duration d) { slept_ += d; }};
  }

  absl::StatusOr<PulledImage> Pull(RegistryClient& client, const std::string& ref,
                                   PullPolicy policy = PullPolicy::kMissing) {
    auto spec = ParseSourceSpec(ref);
    if (!spec.ok()) {
      return spec.status();
    }
    return PullImage(*spec, PullContext{.store = &store_, .registry = &client, .ref_cache = &refs_,
                                        .policy = policy, .platform = HostPlatform()});
  }

  std::string Ref(const std::string& name) { return registry_.host() + "/" + name; }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  BlobStore store_;
  RefCache refs_;
  testing::FakeRegistry registry_;
  testing::BuiltImage image_;
  absl::Duration slept_;
};

TEST_F(RegistryTest, PullsManifestConfigAndLayers) {
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->image.manifest_digest, image_.manifest.digest);
  ASSERT_EQ(pulled->layer_paths.size(), 2u);
  EXPECT_EQ(testing::ReadFileOrDie(pulled->layer_paths[1]), image_.layer_blobs[1]);
  EXPECT_EQ(pulled->layers_fetched, 2);
  EXPECT_THAT(pulled->image.config.cmd.value(), ::testing::ElementsAre("/bin/sh"));
}

TEST_F(RegistryTest, RepeatedPullWithinTtlSendsNoRequests) {
  RegistryClient client(Options());
  ASSERT_TRUE(Pull(client, Ref("team/app:v1")).ok());
  const int64_t before = client.stats().requests;
  auto again = Pull(client, Ref("team/app:v1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->ref_cache_hit);
  EXPECT_EQ(again->layers_cached, 2);
  EXPECT_EQ(client.stats().requests, before);
}

TEST_F(RegistryTest, PullAfterTtlAsksForTheManifestButNotTheBlobs) {
  RegistryClient client(Options());
  ASSERT_TRUE(Pull(client, Ref("team/app:v1")).ok());
  clock_.Advance(absl::Seconds(61));
  const int blob_gets = registry_.blob_gets();
  auto again = Pull(client, Ref("team/app:v1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->ref_cache_hit);
  EXPECT_EQ(registry_.blob_gets(), blob_gets);
}

TEST_F(RegistryTest, SelectsHostPlatformFromIndex) {
  testing::BuiltImage other = TwoLayerImage(Platform{.os = "linux", .architecture = "s390x"});
  registry_.AddIndex("multi", "latest", {other, image_});
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("multi"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->image.manifest_digest, image_.manifest.digest);
}

TEST_F(RegistryTest, IndexWithoutHostPlatformListsAvailable) {
  registry_.AddIndex("foreign", "latest", {TwoLayerImage(Platform{.os = "linux", .architecture = "s390x"})});
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("foreign"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("available: linux/s390x"));
}

TEST_F(RegistryTest, PullByDigest) {
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app@" + image_.manifest.digest.ToString()));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->image.manifest_digest, image_.manifest.digest);
}

TEST_F(RegistryTest, UnknownTagIsNotFoundWithTheRegistryMessage) {
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:nope"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("team/app:nope not found"));
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("MANIFEST_UNKNOWN"));
}

TEST_F(RegistryTest, ContentDigestHeaderMismatchIsDataLoss) {
  registry_.knobs().wrong_content_digest_header = true;
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("Docker-Content-Digest"));
}

TEST_F(RegistryTest, TamperedBlobNeverEntersTheCache) {
  registry_.knobs().tamper_blobs = true;
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("digest mismatch"));
  EXPECT_FALSE(store_.Contains(image_.config.digest));
  EXPECT_FALSE(store_.Contains(image_.layers[0].digest));
}

TEST_F(RegistryTest, TruncatedBlobIsRetriedThenFailsAndLeavesNoBlob) {
  registry_.knobs().truncate_blobs = true;
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("gave up after 4 attempts"));
  EXPECT_EQ(client.stats().retries, 3);
  EXPECT_FALSE(store_.Contains(image_.config.digest));
}

TEST_F(RegistryTest, BrokenTransferResumesWithRange) {
  registry_.knobs().truncate_first_blob_gets = 3;  // config and both layers break once
  registry_.knobs().support_range = true;
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(client.stats().resumes, 3);
  EXPECT_EQ(testing::ReadFileOrDie(pulled->layer_paths[0]), image_.layer_blobs[0]);
}

TEST_F(RegistryTest, BrokenTransferRestartsWhenServerIgnoresRange) {
  registry_.knobs().truncate_first_blob_gets = 3;
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(client.stats().resumes, 0);
  EXPECT_EQ(testing::ReadFileOrDie(pulled->layer_paths[1]), image_.layer_blobs[1]);
}

TEST_F(RegistryTest, ServiceUnavailableIsRetriedWithBackoff) {
  registry_.knobs().fail_first_blob_gets = 2;
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(client.stats().retries, 2);
  EXPECT_EQ(slept_, absl::Milliseconds(200 + 400));
}

TEST_F(RegistryTest, RateLimitHonoursRetryAfterWithinABound) {
  registry_.knobs().fail_first_blob_gets = 2;
  registry_.knobs().fail_status = 429;
  registry_.knobs().retry_after = "3600";  // an hour: capped at 30 s
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(slept_, absl::Seconds(60));
}

TEST_F(RegistryTest, BlobRedirectsAreFollowed) {
  registry_.knobs().redirect_blobs = true;
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(testing::ReadFileOrDie(pulled->layer_paths[0]), image_.layer_blobs[0]);
}

TEST_F(RegistryTest, ProgressReachesTheLayerSize) {
  RegistryClient client(Options());
  std::map<std::string, int64_t> last;
  auto spec = *ParseSourceSpec(Ref("team/app:v1"));
  auto pulled = PullImage(spec, PullContext{.store = &store_, .registry = &client,
                                            .progress = [&](const BlobProgress& p) {
                                              last[p.digest.hex()] = p.done;
                                            }});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(last[image_.layers[0].digest.hex()], image_.layers[0].size);
  EXPECT_EQ(last[image_.layers[1].digest.hex()], image_.layers[1].size);
}

TEST_F(RegistryTest, BasicAuthWithoutCredentialsExplainsHowToLogIn) {
  registry_.knobs().auth = testing::FakeRegistry::Auth::kBasic;
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("docker login"));
}

TEST_F(RegistryTest, BasicAuthWithConfigCredentials) {
  registry_.knobs().auth = testing::FakeRegistry::Auth::kBasic;
  testing::WriteFileOrDie(dir_.Join("docker/config.json"),
                          R"({"auths":{")" + registry_.host() + R"(":{"username":"alice","password":"secret"}}})");
  RegistryClientOptions options = Options();
  options.docker_config_path = dir_.Join("docker/config.json");
  RegistryClient client(options);
  auto pulled = Pull(client, Ref("team/app:v1"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
}

TEST_F(RegistryTest, BasicAuthWithWrongPasswordIsUnauthenticated) {
  registry_.knobs().auth = testing::FakeRegistry::Auth::kBasic;
  RegistryClientOptions options = Options();
  options.credentials[registry_.host()] = Credentials{"alice", "wrong"};
  RegistryClient client(options);
  auto pulled = Pull(client, Ref("team/app:v1"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("rejected the credentials of user 'alice'"));
}

TEST_F(RegistryTest, BearerTokenIsFetchedOnceAndReused) {
  registry_.knobs().auth = testing::FakeRegistry::Auth::kBearer;
  RegistryClientOptions options = Options();
  options.credentials[registry_.host()] = Credentials{"alice", "secret"};
  RegistryClient client(options);
  auto pulled = Pull(client, Ref("team/app:v1"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(client.stats().token_fetches, 1);
}

TEST_F(RegistryTest, BearerAccessTokenFieldIsAccepted) {
  registry_.knobs().auth = testing::FakeRegistry::Auth::kBearer;
  registry_.knobs().token_as_access_token = true;
  RegistryClientOptions options = Options();
  options.credentials[registry_.host()] = Credentials{"alice", "secret"};
  RegistryClient client(options);
  EXPECT_TRUE(Pull(client, Ref("team/app:v1")).ok());
}

TEST_F(RegistryTest, BearerTokenIsRefetchedAfterExpiry) {
  registry_.knobs().auth = testing::FakeRegistry::Auth::kBearer;
  RegistryClientOptions options = Options();
  options.credentials[registry_.host()] = Credentials{"alice", "secret"};
  RegistryClient client(options);
  ASSERT_TRUE(client.GetManifest(*ParseReference(Ref("team/app:v1"))).ok());
  clock_.Advance(absl::Seconds(301));
  ASSERT_TRUE(client.GetManifest(*ParseReference(Ref("team/app:v1"))).ok());
  EXPECT_EQ(client.stats().token_fetches, 2);
}

TEST_F(RegistryTest, RevokedTokenIsReplacedOnce) {
  registry_.knobs().auth = testing::FakeRegistry::Auth::kBearer;
  RegistryClientOptions options = Options();
  options.credentials[registry_.host()] = Credentials{"alice", "secret"};
  RegistryClient client(options);
  ASSERT_TRUE(client.GetManifest(*ParseReference(Ref("team/app:v1"))).ok());
  registry_.knobs().token = "tok-rotated";  // the registry no longer accepts the cached token
  auto again = client.GetManifest(*ParseReference(Ref("team/app:v1")));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(client.stats().token_fetches, 2);
}

TEST_F(RegistryTest, TokenServerRefusalIsUnauthenticated) {
  registry_.knobs().auth = testing::FakeRegistry::Auth::kBearer;
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("refused anonymous access"));
}

TEST_F(RegistryTest, NeverPolicyFailsClearlyWhenNotCached) {
  RegistryClient client(Options());
  auto pulled = Pull(client, Ref("team/app:v1"), PullPolicy::kNever);
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("not cached and the pull policy is 'never'"));
  EXPECT_THAT(registry_.requests(), IsEmpty());
}

TEST_F(RegistryTest, NeverPolicyUsesTheCacheAtAnyAge) {
  RegistryClient client(Options());
  ASSERT_TRUE(Pull(client, Ref("team/app:v1")).ok());
  clock_.Advance(absl::Hours(48));
  const int64_t before = client.stats().requests;
  auto pulled = Pull(client, Ref("team/app:v1"), PullPolicy::kNever);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(client.stats().requests, before);
}

TEST_F(RegistryTest, AlwaysPolicyAsksForTheManifestEvenWithinTtl) {
  RegistryClient client(Options());
  ASSERT_TRUE(Pull(client, Ref("team/app:v1")).ok());
  const int64_t manifests = client.stats().manifest_fetches;
  auto pulled = Pull(client, Ref("team/app:v1"), PullPolicy::kAlways);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(client.stats().manifest_fetches, manifests + 1);
  EXPECT_EQ(pulled->layers_cached, 2);
}

TEST_F(RegistryTest, PingSucceeds) {
  RegistryClient client(Options());
  EXPECT_TRUE(client.Ping(registry_.host()).ok());
}

TEST(RegistryClient, PlainHttpOnlyForLoopbackOrListedRegistries) {
  EXPECT_EQ(RegistryBaseUrl("ghcr.io", {}), "https://ghcr.io");
  EXPECT_EQ(RegistryBaseUrl("registry.lan:5000", {}), "https://registry.lan:5000");
  EXPECT_EQ(RegistryBaseUrl("registry.lan:5000", {"registry.lan:5000"}), "http://registry.lan:5000");
  EXPECT_EQ(RegistryBaseUrl("registry.lan:5001", {"registry.lan:5000"}), "https://registry.lan:5001");
  EXPECT_EQ(RegistryBaseUrl("127.0.0.1:5000", {}), "http://127.0.0.1:5000");
  EXPECT_EQ(RegistryBaseUrl("localhost:5000", {}), "http://localhost:5000");
  EXPECT_EQ(RegistryBaseUrl("127.evil.example:5000", {}), "https://127.evil.example:5000");
}

TEST(RegistryClient, ConnectionRefusedIsUnavailableAfterRetries) {
  // Bind and close a port so nothing listens there.
  std::string host;
  {
    testing::FakeHttpServer server([](const testing::FakeRequest&) { return testing::FakeResponse{}; });
    host = server.host();
  }
  int sleeps = 0;
  RegistryClient client(RegistryClientOptions{.max_attempts = 2, .sleep = [&](absl::Duration) { ++sleeps; }});
  absl::Status s = client.Ping(host);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.message()), HasSubstr("gave up after 2 attempts"));
  EXPECT_EQ(sleeps, 1);
}

}  // namespace
}  // namespace supermachine::image
