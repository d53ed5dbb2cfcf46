// File: sm_bake.cc
// sm-bake: runs one bake (daemon/bake/baker.h) without supermachined — the same library, the
// same store file (<state-dir>/store.db) — printing progress and the result. For tests, the lab
// and debugging. Request flags mirror BakeRequest (and `smctl bake`); docs/bake.md.
//
// Exit status: 0 baked or cache hit; 1 the bake failed (message on stderr); 2 usage errors.
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "daemon/bake/baker.h"
#include "daemon/bake/request_text.h"
#include "daemon/store/store.h"

namespace {

using supermachine::bake::BakeProgress;

void PrintProgress(const BakeProgress& p) {
  if (p.stage == BakeProgress::Stage::kPull) {
    if (p.bytes_done == p.bytes_total) {
      std::fprintf(stderr, "[pull] %s %llu bytes\n", p.layer_digest.c_str(),
                   static_cast<unsigned long long>(p.bytes_total));
    }
    return;
  }
  std::fprintf(stderr, "[%s] %s%s%s\n", supermachine::bake::StageName(p.stage),
               p.message.c_str(), p.layer_digest.empty() ? "" : " ", p.layer_digest.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  namespace bake = supermachine::bake;
  CLI::App app{"sm-bake: bake an image into a snapshot without supermachined (docs/bake.md)"};
  bake::BakeRequestText text;
  bake::BakerOptions options;
  double timeout_s = 0;
  bool json = false;
  app.add_option("image", text.image, "image source: REF, oci-layout:DIR[:TAG], oci-archive:FILE, docker-archive:FILE")->required();
  app.add_option("--state-dir", options.state_dir, "state dir (store.db, caches, deltas; absolute)")->required();
  app.add_option("--kernel", options.kernel_path, "guest kernel (vmlinux or bzImage)")->required()->check(CLI::ExistingFile);
  app.add_option("--agent", options.agent_path, "static guest agent binary")->required()->check(CLI::ExistingFile);
  app.add_option("--worker", options.worker_path, "supermachine-worker binary")->required()->check(CLI::ExistingFile);
  app.add_option("--default-snapshots-dir", options.snapshots_dir, "snapshots dir when the request names none (default <state-dir>/snapshots)");
  app.add_option("--insecure-registry", options.insecure_registries, "registry host[:port] spoken to over plain HTTP");
  app.add_option("--docker-config", options.docker_config_path, "docker config.json for registry credentials");
  app.add_option("--timeout", timeout_s, "overall deadline in seconds (0 = none)");
  app.add_flag("--json", json, "print metadata.json of the result on stdout");

  app.add_option("--name", text.name, "snapshot name (default: derived from the image)");
  app.add_option("--port", text.guest_port, "guest port whose listener means ready");
  app.add_option("--memory", text.memory_mib, "guest RAM in MiB (default 256)");
  app.add_option("--vcpus", text.vcpus, "vCPUs (default 1)");
  app.add_option("--pull", text.pull_policy, "pull policy: always | missing | never");
  app.add_option("--snapshots-dir", text.snapshots_dir, "where <name>/ goes");
  app.add_option("--cmd", text.cmd_json, "command override, JSON argv");
  app.add_option("--entrypoint", text.entrypoint_json, "entrypoint override, JSON argv");
  app.add_option("--workdir", text.workdir, "working directory override");
  app.add_option("--user", text.user, "user override (user, uid, user:group)");
  app.add_option("-e,--env", text.env, "KEY=VALUE added to the image's env");
  app.add_option("--hostname", text.hostname, "guest hostname");
  app.add_option("--file", text.extra_files, "HOST:GUEST file copied into the delta layer");
  app.add_option("--volume", text.volumes, "NAME:GUEST_PATH[:SIZE]");
  app.add_option("--restart", text.restart, "no | on-failure[:N] | always");
  app.add_option("--health-cmd", text.health_cmd, "health check command (JSON argv or shell line)");
  app.add_option("--health-interval", text.health_interval, "health check interval");
  app.add_option("--readiness", text.readiness, "listener | exit | parked | after=MS [,settle=MS,fallback=MS,deadline=MS]");
  app.add_option("--egress", text.egress, "allow_all | deny_private | allowlist:CIDR,... | denylist:CIDR,...");
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<bake::BakeRequest> request = bake::ParseBakeRequest(text);
  if (!request.ok()) {
    std::fprintf(stderr, "sm-bake: %s\n", std::string(request.status().message()).c_str());
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(options.state_dir, ec);
  if (ec) {
    std::fprintf(stderr, "sm-bake: create state dir %s: %s\n", options.state_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  absl::StatusOr<supermachine::store::Store> store = supermachine::store::Store::Open(
      options.state_dir + "/store.db", [] { return absl::ToUnixMillis(absl::Now()); });
  if (!store.ok()) {
    std::fprintf(stderr, "sm-bake: %s\n", store.status().ToString().c_str());
    return 1;
  }
  absl::Mutex mu;
  options.with_store = bake::LockedStoreAccess(&*store, &mu);
  absl::StatusOr<std::unique_ptr<bake::Baker>> baker = bake::Baker::Create(options);
  if (!baker.ok()) {
    std::fprintf(stderr, "sm-bake: %s\n", baker.status().ToString().c_str());
    return 1;
  }
  const absl::Time deadline =
      timeout_s > 0 ? absl::Now() + absl::Seconds(timeout_s) : absl::InfiniteFuture();
  const absl::Time bake_start = absl::Now();
  absl::StatusOr<bake::BakeResult> result = (*baker)->Bake(*request, PrintProgress, deadline);
  // The call alone, without process start and store open: what a cache hit costs the daemon
  // (tests/bench/bake reads this line).
  std::fprintf(stderr, "bake call ms: %lld\n",
               static_cast<long long>(absl::ToInt64Milliseconds(absl::Now() - bake_start)));
  if (!result.ok()) {
    std::fprintf(stderr, "sm-bake: bake failed (%s): %s\n",
                 absl::StatusCodeToString(result.status().code()).c_str(),
                 std::string(result.status().message()).c_str());
    return 1;
  }
  const bake::BakeTimings& t = result->metadata.timings;
  std::fprintf(stderr,
               "snapshot %s at %s (%s)\n"
               "timings ms: resolve %llu pull %llu convert %llu delta %llu boot %llu ready %llu "
               "snapshot %llu total %llu\n",
               result->snapshot_name.c_str(), result->snapshot_dir.c_str(),
               result->cache_hit ? ("cache hit: " + result->hit_kind).c_str() : "baked",
               static_cast<unsigned long long>(t.resolve_ms),
               static_cast<unsigned long long>(t.pull_ms),
               static_cast<unsigned long long>(t.convert_ms),
               static_cast<unsigned long long>(t.delta_ms),
               static_cast<unsigned long long>(t.boot_ms),
               static_cast<unsigned long long>(t.ready_ms),
               static_cast<unsigned long long>(t.snapshot_ms),
               static_cast<unsigned long long>(t.total_ms));
  std::printf("%s\t%s\t%s\n", result->snapshot_name.c_str(), result->snapshot_dir.c_str(),
              result->cache_hit ? result->hit_kind.c_str() : "baked");
  if (json) {
    std::printf("%s", bake::SerializeMetadata(result->metadata).c_str());
  }
  return 0;
}
