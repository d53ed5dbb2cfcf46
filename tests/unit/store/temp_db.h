// File: temp_db.h
// A per-test temporary directory holding a store database, removed afterwards.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace supermachine::store {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sm-store-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace supermachine::store
