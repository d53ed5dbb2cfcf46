// File: sha256.h
// SHA-256 for the snapshot state file's checksum and the kernel identity hash, through
// OpenSSL's low-level SHA256_* functions linked from the static libcrypto.a when there is one.
// Why not EVP and the shared libcrypto.so: every restored clone is its own worker process, and
// merely loading libcrypto.so costs each of them ~400 KiB of private memory (the relocated
// tables of its providers, .data.rel.ro) — 45 % of a clone's memory beyond its guest's pages
// (docs/benchmarks.md, "Snapshot restore"). The low-level functions pull ~26 KiB of code out of
// libcrypto.a (its SHA-NI/AVX2 assembly included) and no provider machinery.
#pragma once

#include <openssl/sha.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace supermachine::snapshot {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental SHA-256 (FIPS 180-4). Cannot fail.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t len);
  Sha256Digest Finish();

 private:
  SHA256_CTX ctx_;
};

Sha256Digest Sha256Of(absl::string_view data);

}  // namespace supermachine::snapshot
