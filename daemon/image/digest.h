// File: digest.h
// Content digests ("sha256:<64 lowercase hex>") and a streaming SHA-256 over OpenSSL EVP.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::image {

// A validated sha256 digest. Other algorithms (sha512, ...) are rejected on parse: every
// registry we target and every OCI layout we produce uses sha256, and a cache keyed by one
// algorithm cannot silently alias another.
class Digest {
 public:
  // An empty placeholder (hex() == ""), only for members assigned before use.
  Digest() = default;
  // Parses "sha256:<64 lowercase hex>". InvalidArgument naming what is wrong.
  static absl::StatusOr<Digest> Parse(absl::string_view text);
  // From 32 raw bytes.
  static Digest FromBytes(const unsigned char bytes[32]);

  const std::string& hex() const { return hex_; }
  std::string ToString() const { return "sha256:" + hex_; }

  bool operator==(const Digest& other) const { return hex_ == other.hex_; }
  bool operator!=(const Digest& other) const { return hex_ != other.hex_; }
  bool operator<(const Digest& other) const { return hex_ < other.hex_; }

 private:
  explicit Digest(std::string hex) : hex_(std::move(hex)) {}
  std::string hex_;
};

// Incremental SHA-256. Move-only; owns one EVP_MD_CTX.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&&) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&&) noexcept;
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(const void* data, size_t size);
  void Update(absl::string_view data) { Update(data.data(), data.size()); }
  // Returns the digest of everything fed since construction or the last Reset, then resets.
  Digest Finish();
  void Reset();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

Digest Sha256Of(absl::string_view bytes);

// SHA-256 of everything `fd` reads from its current offset to EOF (EINTR retried); the byte
// count goes to `*bytes_read` when given. Errors carry errno and `what` ("read <what>: ...").
absl::StatusOr<Digest> Sha256OfFd(int fd, absl::string_view what, int64_t* bytes_read = nullptr);

}  // namespace supermachine::image
