// File: temp_dir.h
// Shared by every test binary: a per-test temporary directory, removed with its contents on
// destruction, and whole-file helpers that abort on failure (a test without its fixture files
// cannot say anything useful).
#pragma once

#include <string>
#include <vector>

namespace supermachine::test_support {

class TempDir {
 public:
  // A fresh directory under $TMPDIR (default /tmp). Aborts if it cannot be made.
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Join(const std::string& name) const { return path_ + "/" + name; }
  // Names directly in the directory, sorted.
  std::vector<std::string> List() const;

 private:
  std::string path_;
};

std::string ReadFileOrDie(const std::string& path);
// Creates parent directories as needed.
void WriteFileOrDie(const std::string& path, const std::string& bytes);
// Names in a directory (not recursive), sorted; empty if it does not exist.
std::vector<std::string> ListDir(const std::string& path);

}  // namespace supermachine::test_support
