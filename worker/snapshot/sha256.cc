// File: sha256.cc
// SHA-256 over OpenSSL's low-level functions (see sha256.h for why these, not EVP).
// OpenSSL 3 marks SHA256_Init/Update/Final deprecated in favour of EVP; EVP is exactly what
// drags the provider tables in, so this file opts out of the warning.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "worker/snapshot/sha256.h"

namespace supermachine::snapshot {

Sha256::Sha256() : ctx_{} { SHA256_Init(&ctx_); }

void Sha256::Update(const void* data, size_t len) { SHA256_Update(&ctx_, data, len); }

Sha256Digest Sha256::Finish() {
  Sha256Digest out{};
  SHA256_Final(out.data(), &ctx_);
  return out;
}

Sha256Digest Sha256Of(absl::string_view data) {
  Sha256 h;
  h.Update(data.data(), data.size());
  return h.Finish();
}

}  // namespace supermachine::snapshot
