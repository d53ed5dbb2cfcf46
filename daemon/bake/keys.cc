// File: keys.cc
// Canonical encodings of the cheap, delta and bake keys.
#include "daemon/bake/keys.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "daemon/bake/snapshot_name.h"
#include "worker/base/status_macros.h"

namespace supermachine::bake {
namespace {

void PutU32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

void PutU64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

void PutBytes(std::string* out, absl::string_view bytes) {
  PutU64(out, bytes.size());
  out->append(bytes.data(), bytes.size());
}

void PutArtifacts(KeyEncoder& enc, const Artifacts& a) {
  enc.Str("kernel", a.kernel.ToString())
      .Str("agent", a.agent.ToString())
      .Str("worker", a.worker.ToString());
}

std::string ModeString(uint32_t mode) {
  return absl::StrCat(absl::Hex(mode & 07777, absl::kZeroPad4));
}

}  // namespace

KeyEncoder::KeyEncoder(absl::string_view kind, uint32_t version) {
  static constexpr char kMagic[] = "smbake-key";  // the terminating NUL is part of the magic
  bytes_.append(kMagic, sizeof(kMagic));
  PutU32(&bytes_, version);
  Str("kind", kind);
}

void KeyEncoder::Name(char type, absl::string_view name) {
  bytes_.push_back(type);
  PutU32(&bytes_, static_cast<uint32_t>(name.size()));
  bytes_.append(name.data(), name.size());
}

KeyEncoder& KeyEncoder::Str(absl::string_view name, absl::string_view value) {
  Name('S', name);
  PutBytes(&bytes_, value);
  return *this;
}

KeyEncoder& KeyEncoder::U64(absl::string_view name, uint64_t value) {
  Name('U', name);
  PutU64(&bytes_, value);
  return *this;
}

KeyEncoder& KeyEncoder::List(absl::string_view name, const std::vector<std::string>& values) {
  Name('L', name);
  PutU64(&bytes_, values.size());
  for (const std::string& v : values) {
    PutBytes(&bytes_, v);
  }
  return *this;
}

KeyEncoder& KeyEncoder::Absent(absl::string_view name) {
  Name('N', name);
  return *this;
}

KeyEncoder& KeyEncoder::OptStr(absl::string_view name, const std::optional<std::string>& value) {
  return value.has_value() ? Str(name, *value) : Absent(name);
}

KeyEncoder& KeyEncoder::OptList(absl::string_view name,
                                const std::optional<std::vector<std::string>>& values) {
  return values.has_value() ? List(name, *values) : Absent(name);
}

image::Digest KeyEncoder::Finish() const { return image::Sha256Of(bytes_); }

// ---- cheap key -------------------------------------------------------------------------

absl::StatusOr<std::vector<FileFingerprint>> FingerprintExtraFiles(const BakeRequest& request) {
  std::vector<FileFingerprint> out;
  out.reserve(request.extra_files.size());
  for (const ExtraFile& f : request.extra_files) {
    absl::StatusOr<FileFingerprint> fp = FingerprintFile(f.host_path);
    if (!fp.ok()) {
      return base::Annotate(fp.status(), absl::StrCat("extra file '", ToString(f), "'"));
    }
    out.push_back(*fp);
  }
  return out;
}

absl::StatusOr<image::Digest> CheapKey(const BakeRequest& r, const CheapKeyExtras& extras) {
  if (extras.extra_files.size() != r.extra_files.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cheap key: ", extras.extra_files.size(), " fingerprints for ", r.extra_files.size(),
        " extra files"));
  }
  // Extra files are a set keyed by guest path (Validate rejects duplicates): sort so the
  // order they were given in does not matter, as it does not for the delta.
  std::vector<std::pair<std::string, std::string>> files;
  for (size_t i = 0; i < r.extra_files.size(); ++i) {
    const FileFingerprint& fp = extras.extra_files[i];
    files.emplace_back(r.extra_files[i].guest_path,
                       absl::StrCat(r.extra_files[i].host_path, "\n", ModeString(fp.mode), "\n",
                                    fp.digest.ToString()));
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> file_items;
  for (const auto& [guest, rest] : files) {
    file_items.push_back(absl::StrCat(guest, "\n", rest));
  }
  std::vector<std::string> volumes;
  for (const Volume& v : r.volumes) {
    volumes.push_back(ToString(v));
  }

  KeyEncoder enc("cheap");
  enc.Str("image", r.image)
      .Str("name", r.name.empty() ? DefaultSnapshotName(r.image) : r.name)
      .U64("guest_port", r.guest_port)
      .U64("memory_mib", r.memory_mib)
      .U64("vcpus", r.vcpus)
      .OptList("cmd", r.cmd)
      .OptList("entrypoint", r.entrypoint)
      .OptStr("workdir", r.workdir)
      .OptStr("user", r.user)
      .List("env", r.env)
      .Str("hostname", r.hostname.empty() ? std::string(kDefaultHostname) : r.hostname)
      .List("extra_files", file_items)
      .List("volumes", volumes)
      .Str("restart", ToString(r.restart));
  if (r.health.has_value()) {
    enc.List("health_cmd", r.health->cmd).U64("health_interval_ms", r.health->interval_ms);
  } else {
    enc.Absent("health_cmd");
  }
  enc.Str("readiness", ToString(EffectiveReadiness(r))).Str("egress", ToString(r.egress));
  PutArtifacts(enc, extras.artifacts);
  enc.Str("cached_image_digest", extras.cached_image_digest);
  return enc.Finish();
}

// ---- delta key -------------------------------------------------------------------------

std::vector<DeltaFile> DeltaFiles(const BakeRequest& request,
                                  const std::vector<FileFingerprint>& fingerprints) {
  std::vector<DeltaFile> out;
  for (size_t i = 0; i < request.extra_files.size() && i < fingerprints.size(); ++i) {
    out.push_back(DeltaFile{.guest_path = request.extra_files[i].guest_path,
                            .mode = fingerprints[i].mode,
                            .content = fingerprints[i].digest});
  }
  return out;
}

image::Digest DeltaKey(const DeltaKeyInputs& in) {
  std::vector<std::string> files;
  for (const DeltaFile& f : in.files) {
    files.push_back(
        absl::StrCat(f.guest_path, "\n", ModeString(f.mode), "\n", f.content.ToString()));
  }
  // Guest paths are unique and lead each item, so sorting the items sorts by path.
  std::sort(files.begin(), files.end());
  std::vector<std::string> volumes;
  for (const Volume& v : in.volumes) {
    volumes.push_back(ToString(v));
  }
  KeyEncoder enc("delta");
  enc.Str("agent", in.agent.ToString())
      .List("argv", in.launch.argv)
      .List("env", in.launch.env)
      .Str("workdir", in.launch.workdir)
      .Str("user", in.launch.user)
      .Str("hostname", in.launch.hostname)
      .Str("restart", ToString(in.launch.restart))
      .List("files", files)
      .List("volumes", volumes)
      .Str("start", in.park ? "restore" : "boot");
  return enc.Finish();
}

// ---- bake key --------------------------------------------------------------------------

image::Digest BakeKey(const BakeKeyInputs& in) {
  std::vector<std::string> layers;
  for (const image::Digest& d : in.layers) {
    layers.push_back(d.ToString());
  }
  KeyEncoder enc("bake");
  enc.List("layers", layers).Str("delta_key", in.delta_key.ToString());
  PutArtifacts(enc, in.artifacts);
  enc.U64("memory_mib", in.memory_mib)
      .U64("vcpus", in.vcpus)
      .Str("readiness", ToString(in.readiness));
  if (in.readiness.mode == Readiness::Mode::kListener) {
    enc.U64("guest_port", in.guest_port);
  } else {
    enc.Absent("guest_port");
  }
  return enc.Finish();
}

}  // namespace supermachine::bake
