// File: delta.cc
#include "daemon/bake/delta.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "daemon/layer/converter.h"
#include "nlohmann/json.hpp"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::bake {
namespace {

// Mount points the agent mounts over before the pivot (docs/guest-boot.md step 1); they must
// exist on the read-only boot root.
constexpr struct {
  const char* path;
  uint32_t mode;
} kMountPoints[] = {{"proc", 0555}, {"sys", 0555}, {"dev", 0755}, {"run", 0755}, {"tmp", 01777}};

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveDeleter>;
using EntryPtr = std::unique_ptr<archive_entry, EntryDeleter>;

absl::Status ArchiveError(archive* a, const std::string& what) {
  const int err = archive_errno(a);
  const char* msg = archive_error_string(a);
  absl::Status st = err == ENOSPC ? absl::ResourceExhaustedError("")
                                  : absl::InternalError("");
  return absl::Status(st.code(), absl::StrCat("delta layer: ", what, ": ",
                                              msg != nullptr ? msg : "libarchive error"));
}

// Tar member paths are relative ("etc/hostname"); guest paths are absolute.
std::string Member(const std::string& guest_path) { return guest_path.substr(1); }

class TarBuilder {
 public:
  explicit TarBuilder(archive* a) : a_(a) {}

  absl::Status Dir(const std::string& member, uint32_t mode) {
    EntryPtr e(archive_entry_new());
    archive_entry_set_pathname(e.get(), member.c_str());
    archive_entry_set_filetype(e.get(), AE_IFDIR);
    archive_entry_set_perm(e.get(), mode);
    archive_entry_set_mtime(e.get(), 0, 0);
    if (archive_write_header(a_, e.get()) != ARCHIVE_OK) {
      return ArchiveError(a_, "write dir " + member);
    }
    return absl::OkStatus();
  }

  absl::Status Bytes(const std::string& member, uint32_t mode, const std::string& data) {
    SM_RETURN_IF_ERROR(FileHeader(member, mode, data.size()));
    if (!data.empty() && archive_write_data(a_, data.data(), data.size()) < 0) {
      return ArchiveError(a_, "write " + member);
    }
    return absl::OkStatus();
  }

  absl::Status HostFile(const std::string& member, uint32_t mode, const std::string& host_path) {
    base::UniqueFd fd(::open(host_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      return base::ErrnoToStatus(errno, absl::StrCat("delta layer: open '", host_path, "'"));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("delta layer: stat '", host_path, "'"));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("delta layer: '", host_path, "' is not a regular file"));
    }
    SM_RETURN_IF_ERROR(FileHeader(member, mode, static_cast<uint64_t>(st.st_size)));
    char buf[64 * 1024];
    uint64_t left = static_cast<uint64_t>(st.st_size);
    while (left > 0) {
      const ssize_t n = ::read(fd.get(), buf, std::min<uint64_t>(sizeof(buf), left));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        return base::ErrnoToStatus(errno, absl::StrCat("delta layer: read '", host_path, "'"));
      }
      if (n == 0) {  // shrank under us: the key hashed other bytes
        return absl::AbortedError(
            absl::StrCat("delta layer: '", host_path, "' changed while being copied"));
      }
      if (archive_write_data(a_, buf, static_cast<size_t>(n)) < 0) {
        return ArchiveError(a_, "write " + member);
      }
      left -= static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }

 private:
  absl::Status FileHeader(const std::string& member, uint32_t mode, uint64_t size) {
    EntryPtr e(archive_entry_new());
    archive_entry_set_pathname(e.get(), member.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), mode & 07777);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    archive_entry_set_mtime(e.get(), 0, 0);
    if (archive_write_header(a_, e.get()) != ARCHIVE_OK) {
      return ArchiveError(a_, "write header " + member);
    }
    return absl::OkStatus();
  }

  archive* a_;
};

// Every ancestor directory of `guest_path` ("/a/b/c" → "a", "a/b").
void AddParents(const std::string& guest_path, std::set<std::string>* dirs) {
  for (size_t pos = guest_path.find('/', 1); pos != std::string::npos;
       pos = guest_path.find('/', pos + 1)) {
    dirs->insert(guest_path.substr(1, pos - 1));
  }
}

absl::Status WriteTar(const DeltaContent& content, const std::string& tar_path) {
  ArchivePtr a(archive_write_new());
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_open_filename(a.get(), tar_path.c_str()) != ARCHIVE_OK) {
    return ArchiveError(a.get(), "open " + tar_path);
  }
  TarBuilder tar(a.get());

  // Regular files by member path; a later extra file at a reserved path is refused, not merged.
  struct Item {
    uint32_t mode;
    std::string host_path;  // "" = inline bytes
    std::string bytes;
  };
  std::map<std::string, Item> files;
  files["/.supermachine/agent"] = {0755, content.agent_path, ""};
  files["/.supermachine/launch.json"] = {0644, "", LaunchJson(content)};
  files["/etc/hostname"] = {0644, "", content.launch.hostname + "\n"};
  for (const DeltaContent::File& f : content.files) {
    if (f.guest_path.rfind("/.supermachine/", 0) == 0 || f.guest_path == "/.supermachine") {
      return absl::InvalidArgumentError(absl::StrCat(
          "extra file '", f.guest_path, "': /.supermachine is reserved for the guest agent"));
    }
    files[f.guest_path] = {f.mode, f.host_path, ""};  // Validate() made guest paths unique
  }

  std::set<std::string> dirs = {".supermachine", "etc"};
  std::map<std::string, uint32_t> dir_modes;
  for (const auto& mp : kMountPoints) {
    dirs.insert(mp.path);
    dir_modes[mp.path] = mp.mode;
  }
  for (const auto& [path, item] : files) {
    AddParents(path, &dirs);
  }
  for (const Volume& v : content.volumes) {
    AddParents(v.guest_path, &dirs);
    dirs.insert(Member(v.guest_path));
  }
  for (const std::string& d : dirs) {  // std::set order: parents before children
    if (files.count("/" + d) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("delta layer: '/", d, "' is both a file and a directory"));
    }
    auto it = dir_modes.find(d);
    SM_RETURN_IF_ERROR(tar.Dir(d, it != dir_modes.end() ? it->second : 0755));
  }
  for (const auto& [path, item] : files) {
    if (item.host_path.empty()) {
      SM_RETURN_IF_ERROR(tar.Bytes(Member(path), item.mode, item.bytes));
    } else {
      SM_RETURN_IF_ERROR(tar.HostFile(Member(path), item.mode, item.host_path));
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    return ArchiveError(a.get(), "close " + tar_path);
  }
  return absl::OkStatus();
}

// A unique name beside `final_path` (same filesystem, so rename is atomic).
absl::StatusOr<std::string> MakeTemp(const std::string& final_path, const char* suffix) {
  std::string tmpl = absl::StrCat(final_path, ".tmp-", suffix, "-XXXXXX");
  base::UniqueFd fd(::mkstemp(tmpl.data()));
  if (!fd.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("delta layer: create temp file ", tmpl));
  }
  return tmpl;
}

}  // namespace

std::string LayerDiskId(size_t index) { return absl::StrCat("l", index); }
std::string VolumeDiskId(size_t index) { return absl::StrCat("v", index); }

std::string LaunchJson(const DeltaContent& content) {
  nlohmann::ordered_json j;
  j["version"] = 1;
  j["argv"] = content.launch.argv;
  j["env"] = content.launch.env;
  j["cwd"] = content.launch.workdir.empty() ? "/" : content.launch.workdir;
  j["user"] = content.launch.user;
  j["hostname"] = content.launch.hostname;
  std::vector<std::string> layers;
  for (size_t i = 0; i < content.layer_count; ++i) {
    layers.push_back(LayerDiskId(i));
  }
  j["layers"] = layers;
  j["upper"] = "tmpfs";
  nlohmann::ordered_json volumes = nlohmann::ordered_json::array();
  for (size_t i = 0; i < content.volumes.size(); ++i) {
    volumes.push_back({{"disk", VolumeDiskId(i)}, {"path", content.volumes[i].guest_path}});
  }
  j["volumes"] = volumes;
  // The host reads the exit over vsock (readiness "exit", restart policy); the VM stays up.
  j["on_exit"] = "stay";
  j["start"] = content.park ? "restore" : "boot";
  return j.dump() + "\n";
}

absl::Status WriteDelta(const DeltaContent& content, const std::string& output_path) {
  SM_ASSIGN_OR_RETURN(std::string tar_path, MakeTemp(output_path, "tar"));
  absl::Cleanup drop_tar = [&] { ::unlink(tar_path.c_str()); };
  SM_RETURN_IF_ERROR(WriteTar(content, tar_path));

  SM_ASSIGN_OR_RETURN(std::string sqfs_tmp, MakeTemp(output_path, "sqfs"));
  absl::Cleanup drop_sqfs = [&] { ::unlink(sqfs_tmp.c_str()); };
  absl::StatusOr<layer::ConvertStats> stats = layer::ConvertLayer(
      tar_path, sqfs_tmp,
      // zstd 3, not the layers' 15: the delta is rebuilt whenever the launch spec changes and
      // is mostly the agent binary; level 15 spent ~18 s on it in the emulated lab.
      {.layer_name = "delta layer", .zstd_level = 3, .num_workers = 1});
  if (!stats.ok()) {
    return stats.status();
  }
  // Verify (a squashfs super block: magic "hsqs", the size it records) and make the bytes
  // durable before the name points at them: ConvertLayer fsyncs nothing.
  {
    base::UniqueFd fd(::open(sqfs_tmp.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      return base::ErrnoToStatus(errno, "delta layer: open " + sqfs_tmp);
    }
    unsigned char super[48] = {};
    struct stat st {};
    if (::pread(fd.get(), super, sizeof(super), 0) != static_cast<ssize_t>(sizeof(super)) ||
        ::fstat(fd.get(), &st) != 0) {
      return base::ErrnoToStatus(errno, "delta layer: read back " + sqfs_tmp);
    }
    uint64_t bytes_used = 0;  // little-endian u64 at offset 40
    for (int i = 7; i >= 0; --i) {
      bytes_used = (bytes_used << 8) | super[40 + i];
    }
    if (std::memcmp(super, "hsqs", 4) != 0 || bytes_used == 0 ||
        bytes_used > static_cast<uint64_t>(st.st_size)) {
      return absl::DataLossError("delta layer: " + sqfs_tmp + " is not a complete squashfs image");
    }
    if (::fsync(fd.get()) != 0) {
      return base::ErrnoToStatus(errno, "delta layer: fsync " + sqfs_tmp);
    }
  }
  if (::rename(sqfs_tmp.c_str(), output_path.c_str()) != 0) {
    return base::ErrnoToStatus(errno, "delta layer: rename to " + output_path);
  }
  std::move(drop_sqfs).Cancel();
  return absl::OkStatus();
}

absl::StatusOr<DeltaBuild> GetOrBuildDelta(const DeltaContent& content, const image::Digest& key,
                                           const std::string& cache_dir) {
  DeltaBuild out;
  out.path = absl::StrCat(cache_dir, "/", key.hex(), "-l", content.layer_count, ".sqfs");
  struct stat st {};
  if (::stat(out.path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    out.cache_hit = true;
    out.size_bytes = static_cast<uint64_t>(st.st_size);
    return out;
  }
  SM_RETURN_IF_ERROR(WriteDelta(content, out.path));
  if (::stat(out.path.c_str(), &st) != 0) {
    return base::ErrnoToStatus(errno, "delta layer: stat " + out.path);
  }
  out.size_bytes = static_cast<uint64_t>(st.st_size);
  return out;
}

}  // namespace supermachine::bake
