// File: image_builder.cc
// Test image construction with libarchive (tar, gzip) and nlohmann-json (documents).
#include "tests/unit/image/testing/image_builder.h"

#include <archive.h>
#include <archive_entry.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "daemon/image/media_types.h"
#include "tests/unit/image/testing/temp_dir.h"

namespace supermachine::image::testing {
namespace {

void Die(const char* what, struct archive* a) {
  std::fprintf(stderr, "%s: %s\n", what, archive_error_string(a));
  std::abort();
}

struct MemWriter {
  std::string out;
  static la_ssize_t Write(struct archive*, void* self, const void* buf, size_t n) {
    static_cast<MemWriter*>(self)->out.append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  static int Close(struct archive*, void*) { return ARCHIVE_OK; }
};

void AddEntry(struct archive* a, const std::string& path, const std::string& content, bool dir) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, path.c_str());
  archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
  archive_entry_set_perm(e, dir ? 0755 : 0644);
  archive_entry_set_size(e, dir ? 0 : static_cast<la_int64_t>(content.size()));
  archive_entry_set_mtime(e, 1700000000, 0);
  if (archive_write_header(a, e) != ARCHIVE_OK) {
    Die("archive_write_header", a);
  }
  if (!dir && !content.empty() &&
      archive_write_data(a, content.data(), content.size()) != static_cast<la_ssize_t>(content.size())) {
    Die("archive_write_data", a);
  }
  archive_entry_free(e);
}

template <typename Fn>
std::string WriteArchive(bool gzip_raw, Fn fill) {
  MemWriter w;
  struct archive* a = archive_write_new();
  if (gzip_raw) {
    archive_write_set_format_raw(a);
    archive_write_add_filter_gzip(a);
  } else {
    archive_write_set_format_pax_restricted(a);
  }
  archive_write_set_bytes_in_last_block(a, 1);
  if (archive_write_open(a, &w, nullptr, &MemWriter::Write, &MemWriter::Close) != ARCHIVE_OK) {
    Die("archive_write_open", a);
  }
  fill(a);
  archive_write_close(a);
  archive_write_free(a);
  return w.out;
}

nlohmann::json DescJson(const Descriptor& d) {
  nlohmann::json j = {{"mediaType", d.media_type}, {"digest", d.digest.ToString()}, {"size", d.size}};
  if (d.platform.has_value()) {
    j["platform"] = {{"os", d.platform->os}, {"architecture", d.platform->architecture}};
    if (!d.platform->variant.empty()) {
      j["platform"]["variant"] = d.platform->variant;
    }
  }
  if (!d.annotations.empty()) {
    j["annotations"] = d.annotations;
  }
  return j;
}

}  // namespace

std::string MakeTar(const Files& files) {
  return WriteArchive(false, [&](struct archive* a) {
    for (const auto& [path, content] : files) {
      const bool dir = !path.empty() && path.back() == '/';
      AddEntry(a, dir ? path.substr(0, path.size() - 1) : path, content, dir);
    }
  });
}

std::string Gzip(const std::string& bytes) {
  return WriteArchive(true, [&](struct archive* a) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, "data");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, static_cast<la_int64_t>(bytes.size()));
    archive_write_header(a, e);
    archive_write_data(a, bytes.data(), bytes.size());
    archive_entry_free(e);
  });
}

std::string TarDirectory(const std::string& dir) {
  Files files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string rel = std::filesystem::relative(e.path(), dir).string();
    if (e.is_directory()) {
      files.emplace_back(rel + "/", "");
    } else {
      files.emplace_back(rel, ReadFileOrDie(e.path().string()));
    }
  }
  return MakeTar(files);
}

Descriptor Describe(const std::string& bytes, const std::string& media_type) {
  return Descriptor{.media_type = media_type, .digest = Sha256Of(bytes),
                    .size = static_cast<int64_t>(bytes.size())};
}

std::string ConfigJson(const Platform& platform, const std::vector<Digest>& diff_ids,
                       const std::vector<std::string>& cmd) {
  nlohmann::json ids = nlohmann::json::array();
  for (const Digest& d : diff_ids) {
    ids.push_back(d.ToString());
  }
  nlohmann::json j = {{"architecture", platform.architecture},
                      {"os", platform.os},
                      {"config", {{"Env", {"PATH=/bin", "GREETING=hello"}}, {"Cmd", cmd},
                                  {"WorkingDir", "/"}, {"ExposedPorts", {{"8080/tcp", nlohmann::json::object()}}}}},
                      {"rootfs", {{"type", "layers"}, {"diff_ids", ids}}}};
  if (!platform.variant.empty()) {
    j["variant"] = platform.variant;
  }
  return j.dump();
}

std::string ManifestJson(const Descriptor& config, const std::vector<Descriptor>& layers) {
  nlohmann::json ls = nlohmann::json::array();
  for (const Descriptor& d : layers) {
    ls.push_back(DescJson(d));
  }
  return nlohmann::json({{"schemaVersion", 2},
                         {"mediaType", media_types::kOciManifest},
                         {"config", DescJson(config)},
                         {"layers", ls}})
      .dump();
}

std::string IndexJson(const std::vector<Descriptor>& manifests) {
  nlohmann::json ms = nlohmann::json::array();
  for (const Descriptor& d : manifests) {
    ms.push_back(DescJson(d));
  }
  return nlohmann::json({{"schemaVersion", 2}, {"mediaType", media_types::kOciIndex}, {"manifests", ms}})
      .dump();
}

BuiltImage BuildImage(const Platform& platform, const std::vector<Files>& layers,
                      const std::vector<std::string>& cmd, bool gzip) {
  BuiltImage img;
  std::vector<Digest> diff_ids;
  for (const Files& files : layers) {
    std::string tar = MakeTar(files);
    diff_ids.push_back(Sha256Of(tar));
    std::string blob = gzip ? Gzip(tar) : tar;
    img.layers.push_back(Describe(blob, gzip ? media_types::kOciLayerGzip : media_types::kOciLayerTar));
    img.layer_blobs.push_back(std::move(blob));
  }
  img.config_json = ConfigJson(platform, diff_ids, cmd);
  img.config = Describe(img.config_json, media_types::kOciConfig);
  img.manifest_json = ManifestJson(img.config, img.layers);
  img.manifest = Describe(img.manifest_json, media_types::kOciManifest);
  img.manifest.platform = platform;
  return img;
}

LayoutWriter::LayoutWriter(std::string dir) : dir_(std::move(dir)) {
  WriteFileOrDie(dir_ + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  std::filesystem::create_directories(dir_ + "/blobs/sha256");
}

void LayoutWriter::PutBlob(const std::string& bytes) {
  WriteFileOrDie(dir_ + "/blobs/sha256/" + Sha256Of(bytes).hex(), bytes);
}

void LayoutWriter::PutImage(const BuiltImage& image) {
  for (const std::string& b : image.layer_blobs) {
    PutBlob(b);
  }
  PutBlob(image.config_json);
  PutBlob(image.manifest_json);
}

void LayoutWriter::WriteIndex(const std::vector<Descriptor>& entries) {
  WriteFileOrDie(dir_ + "/index.json", IndexJson(entries));
}

std::string DockerArchive(const BuiltImage& image, const std::string& repo_tag) {
  Files files;
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < image.layer_blobs.size(); ++i) {
    const std::string id = image.layers[i].digest.hex();
    files.emplace_back(id + "/", "");
    files.emplace_back(id + "/layer.tar", image.layer_blobs[i]);
    layers.push_back(id + "/layer.tar");
  }
  const std::string config_name = image.config.digest.hex() + ".json";
  files.emplace_back(config_name, image.config_json);
  nlohmann::json manifest = nlohmann::json::array(
      {{{"Config", config_name}, {"RepoTags", {repo_tag}}, {"Layers", layers}}});
  files.emplace_back("manifest.json", manifest.dump());
  return MakeTar(files);
}

}  // namespace supermachine::image::testing
