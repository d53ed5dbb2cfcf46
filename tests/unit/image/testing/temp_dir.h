// File: temp_dir.h
// A per-test temporary directory, removed with its contents on destruction.
#pragma once

#include <string>
#include <vector>

namespace supermachine::image::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Whole-file helpers for tests.
std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, const std::string& bytes);
// Names in a directory (not recursive), sorted.
std::vector<std::string> ListDir(const std::string& path);

}  // namespace supermachine::image::testing
