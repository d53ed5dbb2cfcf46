// File: registry_pull_test.cc
// Pulls images pushed by skopeo into Debian's docker-registry (plain and htpasswd Basic auth)
// through our client; archives written by skopeo through the archive sources; and bad input
// from a tampering/truncating proxy in front of the real registry.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "daemon/image/http_client.h"
#include "daemon/image/media_types.h"
#include "daemon/image/pull.h"
#include "daemon/layer/converter.h"
#include "daemon/layer/file_tree.h"
#include "daemon/layer/squashfs_reader.h"
#include "tests/integration/image/local_registry.h"
#include "tests/unit/image/testing/fake_http_server.h"
#include "tests/unit/image/testing/image_builder.h"
#include "tests/unit/image/testing/temp_dir.h"

namespace supermachine::image {
namespace {

using ::testing::HasSubstr;
using testing::RunTool;

constexpr char kUser[] = "pusher";
constexpr char kPassword[] = "correct horse battery";

// Everything the suite builds once: two registries, the images pushed to them.
struct World {
  testing::TempDir dir;
  std::unique_ptr<testing::LocalRegistry> plain;
  std::unique_ptr<testing::LocalRegistry> authed;
  std::string busybox_digest;      // test/busybox:1 (OCI manifest, 2 layers, whiteout in 2nd)
  std::string busybox_v2s2_digest; // test/busybox-v2s2:1 (Docker schema 2)
  std::string multi_index_digest;  // test/multi:latest (OCI index: s390x + host)
  Digest multi_host_manifest;
  std::vector<Digest> busybox_layers;  // from the umoci layout
  std::string busybox_rootfs;      // umoci's unpacked top layer: the expected flattened image
  std::string oci_archive;         // skopeo-written oci-archive of busybox
  std::string docker_archive;      // skopeo-written docker-archive of busybox
};

absl::Status Check(const absl::StatusOr<std::string>& r) { return r.status(); }

absl::StatusOr<std::unique_ptr<World>> BuildWorld() {
  auto w = std::make_unique<World>();
  const std::string home = w->dir.path();
  std::filesystem::create_directories(w->dir.Join("plain"));
  std::filesystem::create_directories(w->dir.Join("authed"));
  auto plain = testing::LocalRegistry::Start({.dir = w->dir.Join("plain")});
  if (!plain.ok()) {
    return plain.status();
  }
  w->plain = *std::move(plain);
  auto authed = testing::LocalRegistry::Start(
      {.dir = w->dir.Join("authed"), .basic_auth = std::make_pair(std::string(kUser), std::string(kPassword))});
  if (!authed.ok()) {
    return authed.status();
  }
  w->authed = *std::move(authed);

  // busybox with umoci: layer 1 = busybox + /gone, layer 2 deletes /gone (a whiteout) and
  // adds /etc/two.
  const std::string layout = w->dir.Join("bb-layout");
  const std::string bundle1 = w->dir.Join("bundle1");
  const std::string bundle2 = w->dir.Join("bundle2");
  const std::string img = layout + ":bb";
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"umoci", "init", "--layout", layout},
           {"umoci", "new", "--image", img},
           {"umoci", "config", "--image", img, "--config.cmd", "/bin/sh", "--config.env", "FOO=bar",
            "--config.workingdir", "/srv"},
           {"umoci", "unpack", "--rootless", "--image", img, bundle1}}) {
    if (auto s = Check(RunTool(argv, home)); !s.ok()) {
      return s;
    }
  }
  std::filesystem::create_directories(bundle1 + "/rootfs/bin");
  std::filesystem::copy_file("/bin/busybox", bundle1 + "/rootfs/bin/busybox");
  std::filesystem::create_symlink("busybox", bundle1 + "/rootfs/bin/sh");
  testing::WriteFileOrDie(bundle1 + "/rootfs/gone", "deleted in layer 2\n");
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"umoci", "repack", "--image", img, bundle1},
           {"umoci", "unpack", "--rootless", "--image", img, bundle2}}) {
    if (auto s = Check(RunTool(argv, home)); !s.ok()) {
      return s;
    }
  }
  std::filesystem::remove(bundle2 + "/rootfs/gone");
  testing::WriteFileOrDie(bundle2 + "/rootfs/etc/two", "2\n");
  if (auto s = Check(RunTool({"umoci", "repack", "--image", img, bundle2}, home)); !s.ok()) {
    return s;
  }
  w->busybox_rootfs = bundle2 + "/rootfs";
  // Layer digests straight from the layout umoci wrote.
  {
    auto index = nlohmann::json::parse(testing::ReadFileOrDie(layout + "/index.json"));
    const std::string mdigest = index["manifests"][0]["digest"].get<std::string>();
    auto manifest = nlohmann::json::parse(
        testing::ReadFileOrDie(layout + "/blobs/sha256/" + mdigest.substr(7)));
    for (const auto& l : manifest["layers"]) {
      w->busybox_layers.push_back(*Digest::Parse(l["digest"].get<std::string>()));
    }
  }

  auto push = [&](const std::string& src, const std::string& dest, std::vector<std::string> extra,
                  std::string* digest) -> absl::Status {
    std::vector<std::string> argv = {"skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                                     "--preserve-digests", "--digestfile", w->dir.Join("digest")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(src);
    argv.push_back(dest);
    if (auto s = Check(RunTool(argv, home)); !s.ok()) {
      return s;
    }
    if (digest != nullptr) {
      *digest = std::string(absl::StripAsciiWhitespace(testing::ReadFileOrDie(w->dir.Join("digest"))));
    }
    return absl::OkStatus();
  };
  const std::string plain_host = w->plain->host();
  if (auto s = push("oci:" + img, "docker://" + plain_host + "/test/busybox:1", {}, &w->busybox_digest); !s.ok()) {
    return s;
  }
  // v2s2 conversion rewrites the manifest, so no --preserve-digests for this one.
  {
    std::vector<std::string> argv = {"skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                                     "--format", "v2s2", "--digestfile", w->dir.Join("digest"),
                                     "oci:" + img, "docker://" + plain_host + "/test/busybox-v2s2:1"};
    if (auto s = Check(RunTool(argv, home)); !s.ok()) {
      return s;
    }
    w->busybox_v2s2_digest = std::string(absl::StripAsciiWhitespace(testing::ReadFileOrDie(w->dir.Join("digest"))));
  }
  if (auto s = push("oci:" + img, "docker://" + w->authed->host() + "/test/private:1",
                    {"--dest-creds", std::string(kUser) + ":" + kPassword}, nullptr);
      !s.ok()) {
    return s;
  }

  // Multi-arch OCI index built by us (s390x first so order does not decide), pushed with --all.
  {
    auto host = testing::BuildImage(HostPlatform(), {{{"arch", HostPlatform().ToString()}}}, {"/arch"});
    auto other = testing::BuildImage(Platform{.os = "linux", .architecture = "s390x"}, {{{"arch", "s390x"}}}, {"/arch"});
    testing::LayoutWriter multi(w->dir.Join("multi-layout"));
    multi.PutImage(host);
    multi.PutImage(other);
    const std::string index = testing::IndexJson({other.manifest, host.manifest});
    multi.PutBlob(index);
    Descriptor entry = testing::Describe(index, media_types::kOciIndex);
    entry.annotations["org.opencontainers.image.ref.name"] = "multi";
    multi.WriteIndex({entry});
    w->multi_host_manifest = host.manifest.digest;
    if (auto s = push("oci:" + w->dir.Join("multi-layout") + ":multi",
                      "docker://" + plain_host + "/test/multi:latest", {"--all"}, &w->multi_index_digest);
        !s.ok()) {
      return s;
    }
  }

  // Archives written by skopeo, for the archive sources.
  w->oci_archive = w->dir.Join("busybox-oci.tar");
  w->docker_archive = w->dir.Join("busybox-docker.tar");
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"skopeo", "--insecure-policy", "copy", "oci:" + img, "oci-archive:" + w->oci_archive + ":bb"},
           {"skopeo", "--insecure-policy", "copy", "oci:" + img, "docker-archive:" + w->docker_archive + ":test/bb:1"}}) {
    if (auto s = Check(RunTool(argv, home)); !s.ok()) {
      return s;
    }
  }
  return w;
}

class RegistryPull : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto w = BuildWorld();
    if (!w.ok()) {
      setup_error_ = new std::string(w.status().ToString());
      return;
    }
    world_ = w->release();
  }
  static void TearDownTestSuite() {
    delete world_;
    world_ = nullptr;
    delete setup_error_;
    setup_error_ = nullptr;
  }

  void SetUp() override {
    // Never skip: a missing peer is a failure with its reason.
    if (setup_error_ != nullptr) {
      FAIL() << "could not build the test registry world: " << *setup_error_;
    }
    auto store = BlobStore::Open(cache_.Join("cache"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::make_unique<BlobStore>(*std::move(store));
    refs_ = std::make_unique<RefCache>(cache_.Join("cache/refs"), &clock_, absl::Seconds(60));
  }

  absl::StatusOr<PulledImage> Pull(RegistryClient& client, const std::string& ref,
                                   PullPolicy policy = PullPolicy::kMissing) {
    auto spec = ParseSourceSpec(ref);
    if (!spec.ok()) {
      return spec.status();
    }
    return PullImage(*spec, PullContext{.store = store_.get(), .registry = &client,
                                        .ref_cache = refs_.get(), .policy = policy});
  }

  std::vector<std::string> CachedBlobs() { return testing::ListDir(cache_.Join("cache/blobs/sha256")); }

  static World* world_;
  static std::string* setup_error_;
  testing::TempDir cache_;
  RealClock clock_;
  std::unique_ptr<BlobStore> store_;
  std::unique_ptr<RefCache> refs_;
};

World* RegistryPull::world_ = nullptr;
std::string* RegistryPull::setup_error_ = nullptr;

TEST_F(RegistryPull, PullsOciImagePushedBySkopeoWithMatchingDigests) {
  RegistryClient client({});
  const absl::Time start = absl::Now();
  auto pulled = Pull(client, world_->plain->host() + "/test/busybox:1");
  const absl::Duration cold = absl::Now() - start;
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  std::printf("cold pull of test/busybox:1 (%lld blob bytes) from loopback docker-registry: %.1f ms\n",
              static_cast<long long>(client.stats().bytes_downloaded), absl::ToDoubleMilliseconds(cold));
  EXPECT_EQ(pulled->image.manifest_digest.ToString(), world_->busybox_digest);
  ASSERT_EQ(pulled->image.layers.size(), 2u);
  EXPECT_EQ(pulled->image.layers[0].digest, world_->busybox_layers[0]);
  EXPECT_EQ(pulled->image.layers[1].digest, world_->busybox_layers[1]);
  EXPECT_EQ(Sha256Of(testing::ReadFileOrDie(pulled->layer_paths[0])), world_->busybox_layers[0]);
  EXPECT_THAT(pulled->image.config.cmd.value(), ::testing::ElementsAre("/bin/sh"));
  EXPECT_EQ(pulled->image.config.working_dir, "/srv");
  EXPECT_THAT(pulled->image.config.env, ::testing::Contains("FOO=bar"));
  EXPECT_EQ(client.stats().blob_downloads, 3);  // config + 2 layers
}

// What a directory tree holds, in the terms both sides can state: type, size, link target.
std::map<std::string, std::string> DescribeDisk(const std::string& root) {
  std::map<std::string, std::string> out;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    // lexically_relative: relative() would resolve symlinks (bin/sh would become bin/busybox).
    const std::string rel = "/" + it->path().lexically_relative(root).string();
    const auto st = it->symlink_status();
    if (std::filesystem::is_symlink(st)) {
      out[rel] = "symlink -> " + std::filesystem::read_symlink(it->path()).string();
    } else if (std::filesystem::is_directory(st)) {
      out[rel] = "dir";
    } else {
      out[rel] = absl::StrCat("file ", std::filesystem::file_size(it->path()));
    }
  }
  return out;
}

std::map<std::string, std::string> DescribeFlattened(const layer::FileTree& tree) {
  std::map<std::string, std::string> out;
  for (const auto& [path, e] : tree) {
    if (path == "/") {
      continue;
    }
    switch (e.type) {
      case layer::FileType::kSymlink:
        out[path] = "symlink -> " + e.symlink_target;
        break;
      case layer::FileType::kDirectory:
        out[path] = "dir";
        break;
      case layer::FileType::kRegular:
        out[path] = absl::StrCat("file ", e.size);
        break;
      default:
        out[path] = layer::FileTypeName(e.type);
    }
  }
  return out;
}

// The whole pipeline of issue 6 in one pass: registry → verified blobs → one squashfs per
// layer → overlayfs stacking gives exactly the image umoci built (the file deleted in the
// second layer stays deleted across layers).
TEST_F(RegistryPull, PulledLayersConvertedToSquashfsFlattenToTheImageTree) {
  RegistryClient client({});
  auto pulled = Pull(client, world_->plain->host() + "/test/busybox:1");
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  std::vector<layer::FileTree> trees;
  for (size_t i = 0; i < pulled->layer_paths.size(); ++i) {
    const std::string out = cache_.Join(absl::StrCat("layer", i, ".sqfs"));
    auto stats = layer::ConvertLayer(pulled->layer_paths[i], out,
                                     {.media_type = pulled->image.layers[i].media_type});
    ASSERT_TRUE(stats.ok()) << stats.status();
    auto tree = layer::ReadSquashfsTree(out, {});
    ASSERT_TRUE(tree.ok()) << tree.status();
    trees.push_back(*std::move(tree));
  }
  ASSERT_EQ(trees.size(), 2u);
  EXPECT_TRUE(trees[1].at("/gone").IsWhiteout());  // the deletion travels as a whiteout

  layer::FileTree flat = layer::FlattenLayers(trees);
  EXPECT_EQ(flat.count("/gone"), 0u);
  EXPECT_EQ(flat.at("/etc/two").content, "2\n");
  EXPECT_EQ(DescribeFlattened(flat), DescribeDisk(world_->busybox_rootfs));
}

TEST_F(RegistryPull, PullsDockerSchema2Manifest) {
  RegistryClient client({});
  auto pulled = Pull(client, world_->plain->host() + "/test/busybox-v2s2:1");
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->image.manifest_media_type, media_types::kDockerManifest);
  EXPECT_EQ(pulled->image.manifest_digest.ToString(), world_->busybox_v2s2_digest);
  EXPECT_EQ(pulled->image.layers[0].media_type, media_types::kDockerLayerGzip);
}

TEST_F(RegistryPull, SecondPullDownloadsNothingAndIsFast) {
  const std::string ref = world_->plain->host() + "/test/busybox:1";
  {
    RegistryClient first({});
    ASSERT_TRUE(Pull(first, ref).ok());
  }
  RegistryClient client({});
  constexpr int kRuns = 21;
  std::vector<double> ms;
  for (int i = 0; i < kRuns; ++i) {
    const absl::Time start = absl::Now();
    auto again = Pull(client, ref);
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    ASSERT_TRUE(again.ok()) << again.status();
    ASSERT_TRUE(again->ref_cache_hit);
  }
  EXPECT_EQ(client.stats().requests, 0);
  EXPECT_EQ(client.stats().blob_downloads, 0);
  std::sort(ms.begin(), ms.end());
  // A figure for the report, not an assertion (benchmarks print; tests don't time).
  std::printf("warm re-pull (ref cache hit, %d runs): median %.3f ms, min %.3f ms, max %.3f ms\n", kRuns,
              ms[kRuns / 2], ms.front(), ms.back());
  RecordProperty("warm_repull_median_ms", std::to_string(ms[kRuns / 2]));
}

TEST_F(RegistryPull, PullWithExpiredRefCacheAsksOnlyForTheManifest) {
  const std::string ref = world_->plain->host() + "/test/busybox:1";
  {
    RegistryClient first({});
    ASSERT_TRUE(Pull(first, ref).ok());
  }
  refs_ = std::make_unique<RefCache>(cache_.Join("cache/refs"), &clock_, absl::ZeroDuration());
  RegistryClient client({});
  auto again = Pull(client, ref);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(client.stats().manifest_fetches, 1);
  EXPECT_EQ(client.stats().blob_downloads, 0);
  EXPECT_EQ(again->layers_cached, 2);
}

TEST_F(RegistryPull, MultiArchIndexResolvesToTheHostManifest) {
  RegistryClient client({});
  auto pulled = Pull(client, world_->plain->host() + "/test/multi");
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->image.manifest_digest, world_->multi_host_manifest);
  EXPECT_EQ(pulled->image.platform.architecture, HostPlatform().architecture);
}

TEST_F(RegistryPull, PullByIndexDigest) {
  RegistryClient client({});
  auto pulled = Pull(client, world_->plain->host() + "/test/multi@" + world_->multi_index_digest);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->image.manifest_digest, world_->multi_host_manifest);
}

TEST_F(RegistryPull, ConcurrentPullsOfOneImageDownloadEachBlobOnce) {
  const std::string ref = world_->plain->host() + "/test/busybox:1";
  RegistryClient shared({});  // one client used by several threads, as the daemon does
  std::vector<absl::StatusOr<PulledImage>> results(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = Pull(shared, ref); });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
  }
  EXPECT_EQ(shared.stats().blob_downloads, 3);  // config + 2 layers, once each
}

TEST_F(RegistryPull, UnknownTagIsNotFound) {
  RegistryClient client({});
  auto pulled = Pull(client, world_->plain->host() + "/test/busybox:nope");
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("test/busybox:nope not found"));
  EXPECT_THAT(CachedBlobs(), ::testing::IsEmpty());
}

TEST_F(RegistryPull, UnknownRepositoryIsNotFound) {
  RegistryClient client({});
  auto pulled = Pull(client, world_->plain->host() + "/no/such:1");
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RegistryPull, BasicAuthRegistryWithoutCredentialsIsUnauthenticated) {
  RegistryClient client({});
  auto pulled = Pull(client, world_->authed->host() + "/test/private:1");
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("docker login"));
}

TEST_F(RegistryPull, BasicAuthRegistryWithDockerConfigCredentials) {
  const std::string config = cache_.Join("docker/config.json");
  testing::WriteFileOrDie(config, R"({"auths":{")" + world_->authed->host() + R"(":{"auth":")" +
                                      Base64Encode(std::string(kUser) + ":" + kPassword) + R"("}}})");
  RegistryClient client({.docker_config_path = config});
  auto pulled = Pull(client, world_->authed->host() + "/test/private:1");
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->image.layers.size(), 2u);
}

TEST_F(RegistryPull, BasicAuthRegistryWithWrongPasswordIsUnauthenticated) {
  RegistryClient client({.credentials = {{world_->authed->host(), Credentials{kUser, "wrong"}}}});
  auto pulled = Pull(client, world_->authed->host() + "/test/private:1");
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("rejected the credentials"));
}

TEST_F(RegistryPull, NeverPolicyWithEmptyCacheFailsWithoutContactingTheRegistry) {
  RegistryClient client({});
  auto pulled = Pull(client, world_->plain->host() + "/test/busybox:1", PullPolicy::kNever);
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(client.stats().requests, 0);
}

// ---- misbehaving network between us and the real registry ----

// Forwards to the real registry; `mangle` edits blob bodies.
class Proxy {
 public:
  Proxy(std::string upstream, std::function<void(testing::FakeResponse&)> mangle)
      : upstream_(std::move(upstream)),
        mangle_(std::move(mangle)),
        server_([this](const testing::FakeRequest& r) { return Forward(r); }) {}
  std::string host() const { return server_.host(); }

 private:
  testing::FakeResponse Forward(const testing::FakeRequest& req) {
    HttpRequest up{.url = "http://" + upstream_ + req.target, .max_body_bytes = 64 << 20};
    if (auto it = req.headers.find("accept"); it != req.headers.end()) {
      up.headers.push_back("Accept: " + it->second);
    }
    auto resp = http_.Do(up);
    if (!resp.ok()) {
      return testing::FakeResponse{.status = 502, .body = resp.status().ToString()};
    }
    testing::FakeResponse out{.status = static_cast<int>(resp->status), .body = resp->body};
    for (const char* h : {"content-type", "docker-content-digest"}) {
      if (auto v = resp->Header(h); !v.empty()) {
        out.headers.emplace_back(h, v);
      }
    }
    if (absl::StrContains(req.target, "/blobs/") && out.status == 200) {
      mangle_(out);
    }
    return out;
  }
  std::string upstream_;
  std::function<void(testing::FakeResponse&)> mangle_;
  HttpClient http_;
  testing::FakeHttpServer server_;
};

TEST_F(RegistryPull, TamperedBlobFromProxyIsDataLossAndCacheHoldsOnlyTheManifest) {
  Proxy proxy(world_->plain->host(), [](testing::FakeResponse& r) { r.body[r.body.size() / 2] ^= 0x20; });
  RegistryClient client({});
  auto pulled = Pull(client, proxy.host() + "/test/busybox:1");
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("digest mismatch"));
  EXPECT_THAT(CachedBlobs(), ::testing::ElementsAre(world_->busybox_digest.substr(7)));
}

TEST_F(RegistryPull, TruncatedBlobFromProxyFailsClearlyAndCacheHoldsOnlyTheManifest) {
  Proxy proxy(world_->plain->host(), [](testing::FakeResponse& r) { r.truncate_at = static_cast<long>(r.body.size() / 3); });
  RegistryClient client({.max_attempts = 2, .initial_backoff = absl::Milliseconds(1)});
  auto pulled = Pull(client, proxy.host() + "/test/busybox:1");
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("gave up after 2 attempts"));
  EXPECT_THAT(CachedBlobs(), ::testing::ElementsAre(world_->busybox_digest.substr(7)));
}

// ---- archives written by skopeo ----

TEST_F(RegistryPull, OciArchiveFromSkopeoMatchesTheLayout) {
  auto pulled = PullImage(*ParseSourceSpec("oci-archive:" + world_->oci_archive + ":bb"),
                          PullContext{.store = store_.get()});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  ASSERT_EQ(pulled->image.layers.size(), 2u);
  EXPECT_EQ(pulled->image.layers[1].digest, world_->busybox_layers[1]);
  EXPECT_EQ(pulled->image.manifest_digest.ToString(), world_->busybox_digest);
}

TEST_F(RegistryPull, DockerArchiveFromSkopeoGivesUncompressedLayersMatchingDiffIds) {
  auto pulled = PullImage(*ParseSourceSpec("docker-archive:" + world_->docker_archive),
                          PullContext{.store = store_.get()});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  ASSERT_EQ(pulled->image.layers.size(), 2u);
  EXPECT_EQ(pulled->image.layers[0].digest, pulled->image.config.diff_ids[0]);
  EXPECT_EQ(Sha256Of(testing::ReadFileOrDie(pulled->layer_paths[1])), pulled->image.config.diff_ids[1]);
  EXPECT_THAT(pulled->image.config.cmd.value(), ::testing::ElementsAre("/bin/sh"));
}

}  // namespace
}  // namespace supermachine::image
