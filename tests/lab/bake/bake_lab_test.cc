// Bake lab test (issue 8): the real pipeline — a locally built busybox httpd image in an OCI
// layout → layers + delta → worker boot → listener readiness → snapshot → metadata + store —
// then the cache tiers, a changed cmd, a workload that exits before listening, and a restore of
// the baked snapshot in a new worker that serves a page over an agent Connect.
// One test, steps in order (each needs the previous one's state); one lab run. A second test
// bakes a volume (parked), restores it twice with one VM's copy (a file written in the first
// restore is there in the second) and once with a fresh copy (it is not).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/agent/agent_client.h"
#include "daemon/bake/baker.h"
#include "daemon/bake/volume_image.h"
#include "daemon/bake/worker_booter.h"
#include "daemon/image/digest.h"
#include "daemon/image/manifest.h"
#include "daemon/image/media_types.h"
#include "daemon/vm/volume_files.h"
#include "gtest/gtest.h"
#include "guest-agent/protocol/frame.h"
#include "tests/lab/agent/agent_vm.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/image/testing/image_builder.h"
#include "worker/base/child_process.h"

namespace supermachine::bake {
namespace {

namespace it = ::supermachine::image::testing;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// An OCI layout with two layers: busybox (the agent lab's layer) and /www/index.html.
void BuildHttpdLayout(const std::string& dir, const std::string& work) {
  const std::string busybox_tar = work + "/busybox.tar";
  ASSERT_TRUE(agent::lab::WriteBusyboxLayerTar(busybox_tar, "/bin/busybox").ok());
  const std::string l0 = ReadAll(busybox_tar);
  const std::string l1 = it::MakeTar({{"www/", ""}, {"www/index.html", "hello from a baked vm\n"}});
  const image::Descriptor d0 = it::Describe(l0, image::media_types::kOciLayerTar);
  const image::Descriptor d1 = it::Describe(l1, image::media_types::kOciLayerTar);
  const std::string config =
      it::ConfigJson(image::HostPlatform(), {d0.digest, d1.digest},
                     {"/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"});
  const image::Descriptor dc = it::Describe(config, image::media_types::kOciConfig);
  const std::string manifest = it::ManifestJson(dc, {d0, d1});
  image::Descriptor dm = it::Describe(manifest, image::media_types::kOciManifest);
  dm.annotations["org.opencontainers.image.ref.name"] = "v1";
  it::LayoutWriter layout(dir);
  for (const std::string* b : {&l0, &l1, &config, &manifest}) {
    layout.PutBlob(*b);
  }
  layout.WriteIndex({dm});
}

class BakeLab : public ::testing::Test {
 protected:
  void SetUp() override {
    kernel_dir_ = agent::lab::KernelDir(SM_SOURCE_DIR);
    ASSERT_FALSE(kernel_dir_.empty()) << "kernel not built (kernel/build.sh)";
    char cwd[4096];
    ASSERT_NE(::getcwd(cwd, sizeof(cwd)), nullptr);
    work_ = std::string(cwd) + "/bake_lab_work";
    ASSERT_EQ(::system(("rm -rf '" + work_ + "' && mkdir -p '" + work_ + "/layout'").c_str()), 0);
    BuildHttpdLayout(work_ + "/layout", work_);
    auto s = store::Store::Open(work_ + "/state/store.db",
                                [] { return absl::ToUnixMillis(absl::Now()); });
    if (!s.ok()) {
      ASSERT_EQ(::mkdir((work_ + "/state").c_str(), 0755), 0);
      s = store::Store::Open(work_ + "/state/store.db", [] { return absl::ToUnixMillis(absl::Now()); });
    }
    ASSERT_TRUE(s.ok()) << s.status();
    store_.emplace(std::move(*s));
    // Jailed bake workers, as the daemon runs them as root (its default; the lab runs tests
    // as root): the image's entrypoint runs in that VM.
    auto b = Baker::Create({.with_store = LockedStoreAccess(&*store_, &mu_),
                            .state_dir = work_ + "/state",
                            .kernel_path = kernel_dir_ + "/vmlinux",
                            .agent_path = SM_GUEST_AGENT_BIN,
                            .worker_path = SM_WORKER_BIN,
                            .worker_jail = true});
    ASSERT_TRUE(b.ok()) << b.status();
    baker_ = std::move(*b);
  }

  BakeRequest Request() {
    BakeRequest r;
    r.image = "oci-layout:" + work_ + "/layout:v1";
    r.name = "httpd";
    r.guest_port = 8080;
    r.readiness = Readiness{.mode = Readiness::Mode::kListener, .fallback_ms = 0,
                            .deadline_ms = 600'000};
    return r;
  }

  absl::StatusOr<BakeResult> Bake(const BakeRequest& r) {
    const absl::Time t0 = absl::Now();
    auto res = baker_->Bake(
        r, [this](const BakeProgress& p) {
          if (p.stage != BakeProgress::Stage::kPull) {
            std::fprintf(stderr, "  [%s] %s %s\n", StageName(p.stage), p.message.c_str(),
                         p.layer_digest.c_str());
          }
          if (p.stage == BakeProgress::Stage::kSnapshot) {
            jailed_bake_vmms_ += JailedBakeVmms();  // the worker runs until its snapshot
          }
        },
        absl::Now() + absl::Minutes(15));
    std::fprintf(stderr, "bake %s: %s in %lld ms\n", r.name.c_str(),
                 res.ok() ? (res->cache_hit ? res->hit_kind.c_str() : "baked")
                          : res.status().ToString().c_str(),
                 static_cast<long long>(absl::ToInt64Milliseconds(absl::Now() - t0)));
    if (res.ok()) {
      const BakeTimings& t = res->metadata.timings;
      std::fprintf(stderr,
                   "  timings ms: resolve %llu pull %llu convert %llu delta %llu boot %llu "
                   "ready %llu snapshot %llu total %llu\n",
                   (unsigned long long)t.resolve_ms, (unsigned long long)t.pull_ms,
                   (unsigned long long)t.convert_ms, (unsigned long long)t.delta_ms,
                   (unsigned long long)t.boot_ms, (unsigned long long)t.ready_ms,
                   (unsigned long long)t.snapshot_ms, (unsigned long long)t.total_ms);
    }
    return res;
  }

  // Bake VMMs running now as PID 1 of their own PID namespace (the jail's), i.e. processes
  // with a --jail-dir in a bake socket dir and NSpid "<host pid>\t1".
  static int JailedBakeVmms() {
    int n = 0;
    std::error_code ec;
    for (auto e = std::filesystem::directory_iterator("/proc", ec);
         !ec && e != std::filesystem::directory_iterator(); e.increment(ec)) {
      std::ifstream cmdline(e->path() / "cmdline");
      std::string argv((std::istreambuf_iterator<char>(cmdline)), {});
      if (!absl::StrContains(argv, std::string("--jail-dir=") + kBakeSocketDirPrefix)) {
        continue;
      }
      std::ifstream status(e->path() / "status");
      std::string line;
      while (std::getline(status, line)) {
        if (absl::StartsWith(line, "NSpid:") && absl::EndsWith(line, "\t1")) {
          ++n;
        }
      }
    }
    return n;
  }

  int jailed_bake_vmms_ = 0;
  std::string kernel_dir_;
  std::string work_;
  absl::Mutex mu_;
  std::optional<store::Store> store_;
  std::unique_ptr<Baker> baker_;
};

TEST_F(BakeLab, BakeCacheRebakeFailureAndRestore) {
  // 1. First bake: boots, waits for httpd's listener, snapshots.
  auto first = Bake(Request());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->cache_hit);
  EXPECT_EQ(jailed_bake_vmms_, 1) << "the bake's VMM did not run jailed";
  const std::string dir = first->snapshot_dir;
  EXPECT_EQ(dir, work_ + "/state/snapshots/httpd");
  for (const char* f : {"metadata.json", "state", "memory"}) {
    struct stat st {};
    EXPECT_EQ(::stat((dir + "/" + f).c_str(), &st), 0) << f;
  }
  auto md = ReadMetadata(dir);
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_EQ(md->layers.size(), 2u);
  EXPECT_GT(md->timings.boot_ms, 0u);
  auto snap = store_->GetSnapshot("httpd");
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(snap->layer_digests.size(), 2u);
  EXPECT_EQ(store_->GetBake(first->bake_id)->status, "succeeded");
  struct stat state_before {};
  ASSERT_EQ(::stat((dir + "/state").c_str(), &state_before), 0);

  // 2. Same request: a cheap-key hit, no boot (the snapshot files are untouched).
  auto again = Bake(Request());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->hit_kind, "cheap");
  struct stat state_after {};
  ASSERT_EQ(::stat((dir + "/state").c_str(), &state_after), 0);
  EXPECT_EQ(state_after.st_ino, state_before.st_ino);
  EXPECT_EQ(state_after.st_mtim.tv_nsec, state_before.st_mtim.tv_nsec);

  // 3. Changed cmd (another port): a new bake replaces the snapshot.
  BakeRequest changed = Request();
  changed.cmd = std::vector<std::string>{"httpd", "-f", "-p", "8081", "-h", "/www"};
  changed.entrypoint = std::vector<std::string>{"/bin/busybox"};
  changed.guest_port = 8081;
  auto rebake = Bake(changed);
  ASSERT_TRUE(rebake.ok()) << rebake.status();
  EXPECT_EQ(rebake->hit_kind, "none");
  EXPECT_NE(rebake->metadata.bake_key, first->metadata.bake_key);
  EXPECT_EQ(ReadMetadata(dir)->guest_port, 8081u);

  // 4. A workload that exits 1 before listening: a clear error with its output, no snapshot.
  BakeRequest failing = Request();
  failing.name = "failing";
  failing.entrypoint = std::vector<std::string>{"/bin/busybox", "sh", "-c"};
  failing.cmd = std::vector<std::string>{"echo bake-lab: about to fail >&2; exit 1"};
  auto failed = Bake(failing);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition) << failed.status();
  EXPECT_TRUE(absl::StrContains(failed.status().message(), "exited 1")) << failed.status();
  EXPECT_TRUE(absl::StrContains(failed.status().message(), "bake-lab: about to fail"))
      << failed.status();
  struct stat st {};
  EXPECT_NE(::stat((work_ + "/state/snapshots/failing").c_str(), &st), 0);

  // 5. Restore the baked snapshot in a new worker and fetch the page over an agent Connect.
  const std::string vsock = "/tmp/bake-lab-restore.vsock";
  ::unlink(vsock.c_str());
  int console = ::open((work_ + "/restore-console.log").c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(console, 0);
  auto worker = base::ChildProcess::Spawn(
      {.argv = {SM_WORKER_BIN, "--restore", dir, "--vsock", vsock, "--serial", "stdout"},
       .stdout_fd = console, .stderr_fd = console, .new_session = true});
  ::close(console);
  ASSERT_TRUE(worker.ok()) << worker.status();
  agent::AgentClient client(
      std::make_unique<agent::HybridVsockDialer>(vsock, agent::protocol::kAgentPort));
  auto ping = client.WaitForAgent(absl::Now() + absl::Seconds(120));
  ASSERT_TRUE(ping.ok()) << ping.status() << "\n" << ReadAll(work_ + "/restore-console.log");
  auto fd = client.Connect(8081, absl::Now() + absl::Seconds(60));
  ASSERT_TRUE(fd.ok()) << fd.status();
  const std::string req = "GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::write(fd->get(), req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::string response;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd->get(), buf, sizeof(buf));
    if (n <= 0) {
      break;
    }
    response.append(buf, static_cast<size_t>(n));
  }
  EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.")) << response;
  EXPECT_TRUE(absl::StrContains(response, "hello from a baked vm")) << response;
  worker->Terminate(absl::Seconds(5)).IgnoreError();
  ::unlink(vsock.c_str());
}

// A restore of a parked snapshot with its disks given explicitly, as the daemon does: the delta
// and layers where the bake had them, then `volume` (the VM's own copy) as v0. Sends Restored
// (which mounts the volume and starts the workload) and returns the worker.
base::ChildProcess RestoreWithVolume(const std::string& snap_dir, const std::string& delta,
                                     const std::vector<std::string>& layers,
                                     const std::string& volume, const std::string& vsock,
                                     const std::string& console_path, uint64_t generation) {
  ::unlink(vsock.c_str());
  std::vector<std::string> argv = {SM_WORKER_BIN, "--restore", snap_dir, "--vsock", vsock,
                                   "--serial", "stdout", "--disk", delta + ",ro,id=delta"};
  for (size_t i = 0; i < layers.size(); ++i) {
    argv.insert(argv.end(), {"--disk", absl::StrCat(layers[i], ",ro,id=l", i)});
  }
  argv.insert(argv.end(), {"--disk", volume + ",rw,id=v0"});
  int console = ::open(console_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  EXPECT_GE(console, 0);
  auto worker = base::ChildProcess::Spawn(
      {.argv = argv, .stdout_fd = console, .stderr_fd = console, .new_session = true});
  ::close(console);
  EXPECT_TRUE(worker.ok()) << worker.status();
  agent::AgentClient client(
      std::make_unique<agent::HybridVsockDialer>(vsock, agent::protocol::kAgentPort));
  auto ping = client.WaitForAgent(absl::Now() + absl::Seconds(180));
  EXPECT_TRUE(ping.ok()) << ping.status() << "\n" << ReadAll(console_path);
  auto acked = client.Restored({.entropy = std::string(32, '\x42'), .wall_clock = absl::Now(),
                                .vm_id = "bake-lab-vol", .generation = generation},
                               absl::Now() + absl::Seconds(120));
  EXPECT_TRUE(acked.ok()) << acked.status() << "\n" << ReadAll(console_path);
  return std::move(*worker);
}

std::string Sh(const std::string& vsock, const std::string& script) {
  agent::AgentClient client(
      std::make_unique<agent::HybridVsockDialer>(vsock, agent::protocol::kAgentPort));
  auto r = client.RunCommand({.argv = {"/bin/busybox", "sh", "-c", script}}, "",
                             absl::Now() + absl::Seconds(120));
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) {
    return "";
  }
  EXPECT_TRUE(r->exit.success()) << script << ": " << r->exit.ToString() << " " << r->stderr_data;
  return r->stdout_data;
}

TEST_F(BakeLab, VolumePersistsAcrossRestoresOfTheSameVm) {
  // 1. A parked bake with a volume (the default readiness with volumes): the image is made,
  //    attached, never mounted before the snapshot.
  BakeRequest r = Request();
  r.name = "vol";
  r.guest_port = 0;
  r.readiness = Readiness{.mode = Readiness::Mode::kParked, .deadline_ms = 600'000};
  r.volumes = {*ParseVolume("data:/data:32M")};
  auto baked = Bake(r);
  ASSERT_TRUE(baked.ok()) << baked.status();
  const std::string dir = baked->snapshot_dir;
  const std::string tmpl = dir + "/volumes/data.img";
  ASSERT_TRUE(CheckExt4Image(tmpl, "data").ok());
  const std::string delta = absl::StrCat(work_, "/state/bake/deltas/",
                                         baked->metadata.delta_key.hex(), "-l2.sqfs");
  std::vector<std::string> layers;
  for (const image::Digest& d : baked->metadata.layers) {
    layers.push_back(absl::StrCat(work_, "/state/layers/layers/sha256_", d.hex(), ".sqfs"));
  }

  // 2. The daemon's part, by hand: this VM's own copy of the template, made the daemon's way
  // (holes kept, then a no-replace rename). In the lab's /tmp (tmpfs), not the work dir: the
  // work dir is the 9p build share, where renameat2(RENAME_NOREPLACE) is EINVAL, and the
  // daemon keeps VM files on the host's own file system.
  const test_support::TempDir copies;
  const std::string copy = copies.Join("vm1-data.img");
  const absl::Status copied = vm::SparseCopyFile(tmpl, copy);
  ASSERT_TRUE(copied.ok()) << copied;
  const std::string vsock = "/tmp/bake-lab-vol.vsock";
  {
    base::ChildProcess w = RestoreWithVolume(dir, delta, layers, copy, vsock,
                                             work_ + "/vol-restore1.log", 1);
    EXPECT_EQ(Sh(vsock, "grep ' /data ext4 ' /proc/mounts | wc -l"), "1\n");
    Sh(vsock, "echo written-by-restore-1 > /data/note && sync");
    w.Terminate(absl::Seconds(5)).IgnoreError();
  }
  // 3. The same VM restored again from the same snapshot with its copy: the file is there.
  {
    base::ChildProcess w = RestoreWithVolume(dir, delta, layers, copy, vsock,
                                             work_ + "/vol-restore2.log", 2);
    EXPECT_EQ(Sh(vsock, "cat /data/note"), "written-by-restore-1\n")
        << ReadAll(work_ + "/vol-restore2.log");
    w.Terminate(absl::Seconds(5)).IgnoreError();
  }
  // 4. Another VM gets a fresh copy of the untouched template: no file.
  const std::string fresh = copies.Join("vm2-data.img");
  const absl::Status fresh_copied = vm::SparseCopyFile(tmpl, fresh);
  ASSERT_TRUE(fresh_copied.ok()) << fresh_copied;
  {
    base::ChildProcess w = RestoreWithVolume(dir, delta, layers, fresh, vsock,
                                             work_ + "/vol-restore3.log", 1);
    EXPECT_EQ(Sh(vsock, "test -e /data/note && echo present || echo absent"), "absent\n");
    w.Terminate(absl::Seconds(5)).IgnoreError();
  }
  ::unlink(vsock.c_str());
}

}  // namespace
}  // namespace supermachine::bake
