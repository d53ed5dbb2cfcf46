// File: metadata.cc
// metadata.json encoding (nlohmann-json, no exceptions escape) and its atomic write.
#include "daemon/bake/metadata.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::bake {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

absl::Status FieldError(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("metadata.json: field '", field, "' ", why));
}

// Typed access to a required field of `obj`; `path` is the field's dotted name for messages.
const Json* Field(const Json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

absl::StatusOr<std::string> GetString(const Json& obj, const char* key, absl::string_view path) {
  const Json* v = Field(obj, key);
  if (v == nullptr) {
    return FieldError(path, "is missing");
  }
  if (!v->is_string()) {
    return FieldError(path, "must be a string");
  }
  return v->get<std::string>();
}

absl::StatusOr<uint64_t> GetUint(const Json& obj, const char* key, absl::string_view path,
                                 uint64_t max) {
  const Json* v = Field(obj, key);
  if (v == nullptr) {
    return FieldError(path, "is missing");
  }
  if (!v->is_number_unsigned() || v->get<uint64_t>() > max) {
    return FieldError(path, absl::StrCat("must be a whole number from 0 to ", max));
  }
  return v->get<uint64_t>();
}

absl::StatusOr<uint32_t> GetU32(const Json& obj, const char* key, absl::string_view path) {
  SM_ASSIGN_OR_RETURN(uint64_t v, GetUint(obj, key, path, UINT32_MAX));
  return static_cast<uint32_t>(v);
}

absl::StatusOr<int64_t> GetInt64(const Json& obj, const char* key, absl::string_view path) {
  const Json* v = Field(obj, key);
  if (v == nullptr) {
    return FieldError(path, "is missing");
  }
  if (!v->is_number_integer()) {
    return FieldError(path, "must be a whole number");
  }
  return v->get<int64_t>();
}

absl::StatusOr<std::vector<std::string>> GetStrings(const Json& obj, const char* key,
                                                    absl::string_view path) {
  const Json* v = Field(obj, key);
  if (v == nullptr) {
    return FieldError(path, "is missing");
  }
  if (!v->is_array()) {
    return FieldError(path, "must be an array of strings");
  }
  std::vector<std::string> out;
  for (const Json& e : *v) {
    if (!e.is_string()) {
      return FieldError(path, "must be an array of strings");
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

absl::StatusOr<const Json*> GetObject(const Json& obj, const char* key, absl::string_view path) {
  const Json* v = Field(obj, key);
  if (v == nullptr) {
    return FieldError(path, "is missing");
  }
  if (!v->is_object()) {
    return FieldError(path, "must be an object");
  }
  return v;
}

absl::StatusOr<const Json*> GetArray(const Json& obj, const char* key, absl::string_view path) {
  const Json* v = Field(obj, key);
  if (v == nullptr) {
    return FieldError(path, "is missing");
  }
  if (!v->is_array()) {
    return FieldError(path, "must be an array");
  }
  return v;
}

absl::StatusOr<image::Digest> GetDigest(const Json& obj, const char* key,
                                        absl::string_view path) {
  SM_ASSIGN_OR_RETURN(std::string text, GetString(obj, key, path));
  absl::StatusOr<image::Digest> d = image::Digest::Parse(text);
  if (!d.ok()) {
    return FieldError(path, d.status().message());
  }
  return *d;
}

// A spec string field parsed back with its parser, errors prefixed with the field.
template <typename T, typename Parser>
absl::StatusOr<T> GetSpec(const Json& obj, const char* key, Parser parse) {
  SM_ASSIGN_OR_RETURN(std::string text, GetString(obj, key, key));
  absl::StatusOr<T> v = parse(text);
  if (!v.ok()) {
    return FieldError(key, v.status().message());
  }
  return *v;
}

OrderedJson TimingsToJson(const BakeTimings& t) {
  return OrderedJson{{"resolve_ms", t.resolve_ms}, {"pull_ms", t.pull_ms},
                     {"convert_ms", t.convert_ms}, {"delta_ms", t.delta_ms},
                     {"boot_ms", t.boot_ms},       {"ready_ms", t.ready_ms},
                     {"snapshot_ms", t.snapshot_ms}, {"total_ms", t.total_ms}};
}

absl::StatusOr<BakeTimings> TimingsFromJson(const Json& obj) {
  SM_ASSIGN_OR_RETURN(const Json* t, GetObject(obj, "timings", "timings"));
  BakeTimings out;
  struct {
    const char* key;
    uint64_t* dst;
  } fields[] = {{"resolve_ms", &out.resolve_ms}, {"pull_ms", &out.pull_ms},
                {"convert_ms", &out.convert_ms}, {"delta_ms", &out.delta_ms},
                {"boot_ms", &out.boot_ms},       {"ready_ms", &out.ready_ms},
                {"snapshot_ms", &out.snapshot_ms}, {"total_ms", &out.total_ms}};
  for (const auto& f : fields) {
    SM_ASSIGN_OR_RETURN(*f.dst,
                        GetUint(*t, f.key, absl::StrCat("timings.", f.key), UINT64_MAX));
  }
  return out;
}

absl::StatusOr<LaunchSpec> LaunchFromJson(const Json& obj) {
  SM_ASSIGN_OR_RETURN(const Json* l, GetObject(obj, "launch", "launch"));
  LaunchSpec out;
  SM_ASSIGN_OR_RETURN(out.argv, GetStrings(*l, "argv", "launch.argv"));
  if (out.argv.empty()) {
    return FieldError("launch.argv", "is empty");
  }
  SM_ASSIGN_OR_RETURN(out.env, GetStrings(*l, "env", "launch.env"));
  SM_ASSIGN_OR_RETURN(out.workdir, GetString(*l, "workdir", "launch.workdir"));
  SM_ASSIGN_OR_RETURN(out.user, GetString(*l, "user", "launch.user"));
  SM_ASSIGN_OR_RETURN(out.hostname, GetString(*l, "hostname", "launch.hostname"));
  SM_ASSIGN_OR_RETURN(out.restart, GetSpec<RestartPolicy>(*l, "restart", ParseRestartPolicy));
  return out;
}

absl::StatusOr<std::vector<DeltaFile>> ExtraFilesFromJson(const Json& obj) {
  SM_ASSIGN_OR_RETURN(const Json* a, GetArray(obj, "extra_files", "extra_files"));
  std::vector<DeltaFile> out;
  for (const Json& e : *a) {
    if (!e.is_object()) {
      return FieldError("extra_files", "must be an array of objects");
    }
    DeltaFile f;
    SM_ASSIGN_OR_RETURN(f.guest_path, GetString(e, "guest_path", "extra_files[].guest_path"));
    SM_ASSIGN_OR_RETURN(uint64_t mode, GetUint(e, "mode", "extra_files[].mode", 07777));
    f.mode = static_cast<uint32_t>(mode);
    SM_ASSIGN_OR_RETURN(f.content, GetDigest(e, "sha256", "extra_files[].sha256"));
    out.push_back(std::move(f));
  }
  return out;
}

absl::StatusOr<std::vector<Volume>> VolumesFromJson(const Json& obj) {
  SM_ASSIGN_OR_RETURN(const Json* a, GetArray(obj, "volumes", "volumes"));
  std::vector<Volume> out;
  for (const Json& e : *a) {
    if (!e.is_object()) {
      return FieldError("volumes", "must be an array of objects");
    }
    Volume v;
    SM_ASSIGN_OR_RETURN(v.name, GetString(e, "name", "volumes[].name"));
    SM_ASSIGN_OR_RETURN(v.guest_path, GetString(e, "guest_path", "volumes[].guest_path"));
    SM_ASSIGN_OR_RETURN(v.size_bytes, GetUint(e, "size_bytes", "volumes[].size_bytes",
                                              UINT64_MAX));
    absl::Status st = CheckVolume(v);
    if (!st.ok()) {
      return FieldError("volumes", st.message());
    }
    out.push_back(std::move(v));
  }
  return out;
}

absl::StatusOr<std::optional<HealthCheck>> HealthFromJson(const Json& obj) {
  const Json* h = Field(obj, "health");
  if (h == nullptr) {
    return FieldError("health", "is missing (null when there is no health check)");
  }
  if (h->is_null()) {
    return std::optional<HealthCheck>();
  }
  if (!h->is_object()) {
    return FieldError("health", "must be an object or null");
  }
  HealthCheck out;
  SM_ASSIGN_OR_RETURN(out.cmd, GetStrings(*h, "cmd", "health.cmd"));
  SM_ASSIGN_OR_RETURN(out.interval_ms, GetU32(*h, "interval_ms", "health.interval_ms"));
  absl::Status st = CheckHealthCheck(out);
  if (!st.ok()) {
    return FieldError("health", st.message());
  }
  return std::optional<HealthCheck>(std::move(out));
}

}  // namespace

std::string SerializeMetadata(const SnapshotMetadata& m) {
  OrderedJson layers = OrderedJson::array();
  for (const image::Digest& d : m.layers) {
    layers.push_back(d.ToString());
  }
  OrderedJson files = OrderedJson::array();
  for (const DeltaFile& f : m.extra_files) {
    files.push_back(OrderedJson{
        {"guest_path", f.guest_path}, {"mode", f.mode}, {"sha256", f.content.ToString()}});
  }
  OrderedJson volumes = OrderedJson::array();
  for (size_t i = 0; i < m.volumes.size(); ++i) {
    const Volume& v = m.volumes[i];
    // image / disk_id are informative (derived from name and order; readers need not parse
    // them): where the image sits in the snapshot dir, and its virtio serial (delta.h
    // VolumeDiskId), i.e. what the daemon must attach per VM (docs/bake.md "Volumes").
    volumes.push_back(OrderedJson{{"name", v.name},
                                  {"guest_path", v.guest_path},
                                  {"size_bytes", v.size_bytes},
                                  {"image", VolumeImageRelPath(v)},
                                  {"disk_id", "v" + std::to_string(i)}});
  }
  OrderedJson health = nullptr;
  if (m.health.has_value()) {
    health = OrderedJson{{"cmd", m.health->cmd}, {"interval_ms", m.health->interval_ms}};
  }
  const OrderedJson j = {
      {"format_version", kMetadataFormatVersion},
      {"name", m.name},
      {"image", m.image},
      {"image_digest", m.image_digest.ToString()},
      {"layers", layers},
      {"cheap_key", m.cheap_key.ToString()},
      {"delta_key", m.delta_key.ToString()},
      {"bake_key", m.bake_key.ToString()},
      {"kernel", {{"version", m.kernel_version}, {"sha256", m.kernel_digest.ToString()}}},
      {"agent", {{"version", m.agent_version}, {"sha256", m.agent_digest.ToString()}}},
      {"memory_mib", m.memory_mib},
      {"vcpus", m.vcpus},
      {"guest_port", m.guest_port},
      {"launch",
       {{"argv", m.launch.argv},
        {"env", m.launch.env},
        {"workdir", m.launch.workdir},
        {"user", m.launch.user},
        {"hostname", m.launch.hostname},
        {"restart", ToString(m.launch.restart)}}},
      {"extra_files", files},
      {"volumes", volumes},
      {"health", health},
      {"readiness", ToString(m.readiness)},
      {"egress_policy", ToString(m.egress)},
      {"baked_at_unix_ms", m.baked_at_unix_ms},
      {"timings", TimingsToJson(m.timings)},
  };
  return j.dump(2) + "\n";
}

absl::StatusOr<SnapshotMetadata> ParseMetadata(absl::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError("metadata.json: not valid JSON");
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError("metadata.json: not a JSON object");
  }
  SM_ASSIGN_OR_RETURN(uint64_t version, GetUint(j, "format_version", "format_version", 1 << 30));
  if (version != kMetadataFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "metadata.json format_version ", version, ": this supermachined reads only ",
        kMetadataFormatVersion, "; bake the snapshot again with this version"));
  }
  SnapshotMetadata m;
  SM_ASSIGN_OR_RETURN(m.name, GetString(j, "name", "name"));
  SM_ASSIGN_OR_RETURN(m.image, GetString(j, "image", "image"));
  SM_ASSIGN_OR_RETURN(m.image_digest, GetDigest(j, "image_digest", "image_digest"));
  SM_ASSIGN_OR_RETURN(std::vector<std::string> layers, GetStrings(j, "layers", "layers"));
  for (const std::string& l : layers) {
    absl::StatusOr<image::Digest> d = image::Digest::Parse(l);
    if (!d.ok()) {
      return FieldError("layers", d.status().message());
    }
    m.layers.push_back(*d);
  }
  SM_ASSIGN_OR_RETURN(m.cheap_key, GetDigest(j, "cheap_key", "cheap_key"));
  SM_ASSIGN_OR_RETURN(m.delta_key, GetDigest(j, "delta_key", "delta_key"));
  SM_ASSIGN_OR_RETURN(m.bake_key, GetDigest(j, "bake_key", "bake_key"));
  SM_ASSIGN_OR_RETURN(const Json* kernel, GetObject(j, "kernel", "kernel"));
  SM_ASSIGN_OR_RETURN(m.kernel_version, GetString(*kernel, "version", "kernel.version"));
  SM_ASSIGN_OR_RETURN(m.kernel_digest, GetDigest(*kernel, "sha256", "kernel.sha256"));
  SM_ASSIGN_OR_RETURN(const Json* agent, GetObject(j, "agent", "agent"));
  SM_ASSIGN_OR_RETURN(m.agent_version, GetString(*agent, "version", "agent.version"));
  SM_ASSIGN_OR_RETURN(m.agent_digest, GetDigest(*agent, "sha256", "agent.sha256"));
  SM_ASSIGN_OR_RETURN(m.memory_mib, GetU32(j, "memory_mib", "memory_mib"));
  SM_ASSIGN_OR_RETURN(m.vcpus, GetU32(j, "vcpus", "vcpus"));
  SM_ASSIGN_OR_RETURN(m.guest_port, GetU32(j, "guest_port", "guest_port"));
  SM_ASSIGN_OR_RETURN(m.launch, LaunchFromJson(j));
  SM_ASSIGN_OR_RETURN(m.extra_files, ExtraFilesFromJson(j));
  SM_ASSIGN_OR_RETURN(m.volumes, VolumesFromJson(j));
  SM_ASSIGN_OR_RETURN(m.health, HealthFromJson(j));
  SM_ASSIGN_OR_RETURN(m.readiness, GetSpec<Readiness>(j, "readiness", ParseReadiness));
  SM_ASSIGN_OR_RETURN(m.egress, GetSpec<EgressPolicy>(j, "egress_policy", ParseEgressPolicy));
  SM_ASSIGN_OR_RETURN(m.baked_at_unix_ms, GetInt64(j, "baked_at_unix_ms", "baked_at_unix_ms"));
  SM_ASSIGN_OR_RETURN(m.timings, TimingsFromJson(j));
  return m;
}

absl::Status WriteMetadata(const std::string& dir, const SnapshotMetadata& metadata) {
  const std::string final_path = absl::StrCat(dir, "/", kMetadataFileName);
  std::string temp_path = absl::StrCat(dir, "/.", kMetadataFileName, ".XXXXXX");
  base::UniqueFd fd(mkostemp(temp_path.data(), O_CLOEXEC));
  if (!fd.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("create a temp file in '", dir, "'"));
  }
  absl::Cleanup remove_temp = [&temp_path] { unlink(temp_path.c_str()); };
  // mkostemp makes 0600; the snapshot dir's readers (smctl inspect as the same user, backups)
  // expect an ordinary file.
  if (fchmod(fd.get(), 0644) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("chmod '", temp_path, "'"));
  }
  const std::string text = SerializeMetadata(metadata);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return base::ErrnoToStatus(errno, absl::StrCat("write '", temp_path, "'"));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync '", temp_path, "'"));
  }
  fd.Reset();
  if (rename(temp_path.c_str(), final_path.c_str()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("rename to '", final_path, "'"));
  }
  std::move(remove_temp).Cancel();
  // The rename is durable only once the directory entry is.
  base::UniqueFd dir_fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd.valid() || fsync(dir_fd.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync directory '", dir, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SnapshotMetadata> ReadMetadata(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kMetadataFileName);
  base::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("open '", path, "'"));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("stat '", path, "'"));
  }
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > kMaxMetadataBytes) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is ", st.st_size,
                                                   " bytes; metadata files are at most ",
                                                   kMaxMetadataBytes));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = read(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("read '", path, "'"));
    }
    if (n == 0) {
      text.resize(done);  // shrank while we read; parse what is there (it will fail loudly)
      break;
    }
    done += static_cast<size_t>(n);
  }
  absl::StatusOr<SnapshotMetadata> m = ParseMetadata(text);
  if (!m.ok()) {
    return base::Annotate(m.status(), path);
  }
  return m;
}

}  // namespace supermachine::bake
