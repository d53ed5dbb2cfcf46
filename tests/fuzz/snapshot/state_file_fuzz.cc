// File: state_file_fuzz.cc
// Fuzzes what a restore does with a snapshot's on-disk state file before any KVM object
// exists (worker/vmm/vm_snapshot.cc): DecodeStateFile (header, limits, checksum, protobuf),
// then CheckRestorable, CPUID extraction, each device's transport state checked against every
// device type, the serial state, and the memory layout mapped over a small RAM file. A state
// file on disk may be truncated, corrupted or planted; every check must fail with a Status.
//
// Input byte 0 picks the mode: bit 0 clear = the rest is the file as is (header checks);
// set = the rest is the payload, wrapped in a valid header with its real checksum, so the
// fuzzer reaches the protobuf and everything after it. Bit 1 picks the minor format (0/1).
// Property: a decoded state re-encodes to a file that decodes again.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/strings/string_view.h"
#include "worker/base/unique_fd.h"
#include "worker/devices/virtio/device.h"
#include "worker/snapshot/compat.h"
#include "worker/snapshot/device_state.h"
#include "worker/snapshot/memory_file.h"
#include "worker/snapshot/sha256.h"
#include "worker/snapshot/state_file.h"
#include "worker/snapshot/vcpu_state.h"

namespace {

namespace snap = supermachine::snapshot;
namespace virtio = supermachine::devices::virtio;

constexpr uint64_t kRamFileSize = uint64_t{64} << 10;

// A directory holding a 64 KiB RAM file named "mem", made once per process and removed at
// exit (corpus replays in CI leave nothing behind in /tmp).
class RamDirectory {
 public:
  RamDirectory() {
    char tmpl[] = "/tmp/sm-state-fuzz.XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) {
      return;
    }
    path_ = d;
    supermachine::base::UniqueFd fd(
        open((path_ + "/mem").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (fd.valid()) {
      (void)ftruncate(fd.get(), static_cast<off_t>(kRamFileSize));
    }
  }
  ~RamDirectory() {
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  RamDirectory(const RamDirectory&) = delete;
  RamDirectory& operator=(const RamDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const std::string& RamDir() {
  static const RamDirectory dir;
  return dir.path();
}

void PutLe(std::string* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

std::string Wrap(absl::string_view payload, uint16_t minor) {
  std::string out(snap::kStateMagic, sizeof(snap::kStateMagic));
  PutLe(&out, snap::kFormatMajor, 2);
  PutLe(&out, minor, 2);
  PutLe(&out, 0, 4);
  PutLe(&out, payload.size(), 8);
  const snap::Sha256Digest digest = snap::Sha256Of(payload);
  out.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  out.append(payload.data(), payload.size());
  return out;
}

void UseState(const snap::v1::SnapshotState& state) {
  // The caller's target matches the snapshot's CPU, so the checks after it run too.
  snap::RestoreTarget target{.host_cpu = state.cpu()};
  (void)snap::CheckRestorable(state, target);
  target.vcpu_count = 1;
  target.guest.kernel_sha256 = "0000";
  (void)snap::CheckRestorable(state, target);
  for (const auto& vcpu : state.vcpus()) {
    (void)snap::CpuidFromState(vcpu);
  }
  const uint32_t types[] = {virtio::kDeviceTypeBlock, virtio::kDeviceTypeRng,
                            virtio::kDeviceTypeVsock, 1 /* net */};
  for (const auto& dev : state.devices()) {
    for (uint32_t type : types) {
      (void)snap::TransportFromProto(dev.transport(), type, virtio::kFeatureVersion1 | 0xffff,
                                     type == virtio::kDeviceTypeVsock ? 3 : 1);
    }
  }
  (void)snap::SerialFromProto(state.serial());
  // The layout over a real (small) RAM file: names, sizes, alignment, overlap, coverage.
  snap::v1::MemoryLayout layout = state.memory();
  (void)snap::MapMemoryFile(RamDir(), layout);
  layout.set_file_name("mem");
  layout.set_file_size(kRamFileSize);
  (void)snap::MapMemoryFile(RamDir(), layout);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string bytes = (data[0] & 1) != 0 ? Wrap(rest, (data[0] >> 1) & 1) : std::string(rest);
  auto state = snap::DecodeStateFile(bytes, "fuzz");
  if (!state.ok()) {
    return 0;
  }
  UseState(*state);
  if (!snap::DecodeStateFile(snap::EncodeStateFile(*state), "re-encoded").ok()) {
    __builtin_trap();  // What we write, we must read back.
  }
  return 0;
}
