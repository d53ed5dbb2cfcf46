// File: web_snapshot.cc
// The daemon lab tests' shared starting point; see web_snapshot.h.
#include "tests/lab/daemon/web_snapshot.h"

#include <chrono>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/image/manifest.h"
#include "daemon/image/media_types.h"
#include "daemon/store/store.h"
#include "tests/lab/agent/agent_vm.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/image/testing/image_builder.h"

namespace supermachine::lab {

absl::StatusOr<std::string> MakeWebSnapshot(const WebSnapshotOptions& options) {
  namespace fs = std::filesystem;
  const std::string snap_dir = options.state_dir + "/snapshots/" + options.name;
  std::error_code ec;
  fs::create_directories(fs::path(snap_dir).parent_path(), ec);
  fs::create_directories(options.work_dir, ec);
  {
    auto vm = agent::lab::AgentVm::Boot({
        .work_dir = options.work_dir,
        .name = "bake",
        .worker_bin = options.worker_bin,
        .agent_bin = options.agent_bin,
        .kernel = options.kernel,
        .vcpus = 1,
        .mem_mib = options.mem_mib,
        .workload_argv = {"/bin/sh", "-c",
                          "mkdir -p /tmp/www && echo hello-from-guest > /tmp/www/index.html && "
                          "exec /bin/busybox httpd -f -p 8000 -h /tmp/www"},
    });
    if (!vm.ok()) {
      return vm.status();
    }
    auto waited = (*vm)->client().WaitReady(agent::ReadyCondition::ListenerPort(kWebGuestPort),
                                            absl::Now() + absl::Seconds(240));
    if (!waited.ok()) {
      return absl::Status(waited.status().code(),
                          absl::StrCat(waited.status().message(), (*vm)->Diagnostics()));
    }
    absl::Status st = (*vm)->Snapshot(snap_dir);
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrCat(st.message(), (*vm)->Diagnostics()));
    }
    (void)(*vm)->Shutdown(absl::Seconds(30));
  }
  auto store = store::Store::Open(options.state_dir + "/store.db",
                                  [] { return absl::ToUnixMillis(absl::Now()); });
  if (!store.ok()) {
    return store.status();
  }
  store::SnapshotRecord rec;
  rec.name = options.name;
  rec.bake_key = "lab";
  rec.path = snap_dir;
  rec.metadata_json = "{}";
  if (absl::Status st = store->PutSnapshot(rec); !st.ok()) {
    return st;
  }
  return snap_dir;
}

absl::Status WriteBusyboxLayout(const std::string& dir, const std::string& work,
                                const std::vector<std::string>& cmd) {
  namespace it = image::testing;
  const std::string tar = work + "/busybox.tar";
  if (absl::Status st = agent::lab::WriteBusyboxLayerTar(tar, "/bin/busybox"); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("busybox layer tar: ", st.message()));
  }
  const std::string l0 = test_support::ReadFileOrDie(tar);
  const image::Descriptor d0 = it::Describe(l0, image::media_types::kOciLayerTar);
  const std::string config = it::ConfigJson(image::HostPlatform(), {d0.digest}, cmd);
  const image::Descriptor dc = it::Describe(config, image::media_types::kOciConfig);
  const std::string manifest = it::ManifestJson(dc, {d0});
  image::Descriptor dm = it::Describe(manifest, image::media_types::kOciManifest);
  dm.annotations["org.opencontainers.image.ref.name"] = "v1";
  it::LayoutWriter layout(dir);
  for (const std::string* b : {&l0, &config, &manifest}) {
    layout.PutBlob(*b);
  }
  layout.WriteIndex({dm});
  return absl::OkStatus();
}

ExecOut ExecIn(v1::Supermachine::Stub& stub, const std::string& vm,
               const std::vector<std::string>& argv) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto stream = stub.Exec(&ctx);
  v1::ExecRequest start;
  start.mutable_start()->set_vm_id(vm);
  for (const auto& a : argv) {
    start.mutable_start()->add_argv(a);
  }
  stream->Write(start);
  stream->WritesDone();
  ExecOut out;
  v1::ExecResponse resp;
  while (stream->Read(&resp)) {
    if (resp.has_stdout()) {
      out.out += resp.stdout();
    } else if (resp.has_stderr()) {
      out.err += resp.stderr();
    } else if (resp.has_exit()) {
      out.code = resp.exit().signal() ? 128 + resp.exit().signal() : resp.exit().exit_code();
    }
  }
  grpc::Status st = stream->Finish();
  out.status = st.error_code();
  if (!st.ok()) {
    out.err += "grpc: " + st.error_message();
  }
  return out;
}

}  // namespace supermachine::lab
