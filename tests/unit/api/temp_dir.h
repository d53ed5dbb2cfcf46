// File: temp_dir.h
// A per-test temporary directory under /tmp with a short path (Unix socket paths are limited
// to 107 bytes), removed with its contents afterwards.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace supermachine::test_support {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/smt-XXXXXX";
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string path() const { return path_.string(); }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace supermachine::test_support
