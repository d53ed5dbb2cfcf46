// File: mapping.h
// Mapping: the one owner of an mmap'd range; munmaps it on destruction. Move-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"

namespace supermachine::memory {

class Mapping {
 public:
  Mapping() = default;
  // Maps `size` bytes of `fd` at `offset` with `prot`/`flags` (as mmap(2)); fd may be -1 with
  // MAP_ANONYMOUS.
  static absl::StatusOr<Mapping> Map(int fd, size_t size, int prot, int flags, off_t offset = 0);

  ~Mapping() { Reset(); }
  Mapping(Mapping&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept {
    if (this != &other) {
      Reset();
      addr_ = std::exchange(other.addr_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  uint8_t* data() const { return static_cast<uint8_t*>(addr_); }
  size_t size() const { return size_; }
  bool valid() const { return addr_ != nullptr; }

  void Reset();

 private:
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace supermachine::memory
