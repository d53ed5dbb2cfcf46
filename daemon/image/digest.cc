// File: digest.cc
// sha256 digest parsing and hashing (OpenSSL EVP).
#include "daemon/image/digest.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {

struct Sha256Hasher::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

absl::StatusOr<Digest> Digest::Parse(absl::string_view text) {
  const size_t colon = text.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest '", text, "': expected 'sha256:<64 hex digits>'"));
  }
  absl::string_view algorithm = text.substr(0, colon);
  absl::string_view hex = text.substr(colon + 1);
  if (algorithm != "sha256") {
    return absl::InvalidArgumentError(absl::StrCat(
        "digest '", text, "': unsupported algorithm '", algorithm, "' (only sha256)"));
  }
  if (hex.size() != 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "digest '", text, "': sha256 needs 64 hex digits, got ", hex.size()));
  }
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError(
          absl::StrCat("digest '", text, "': not lowercase hex"));
    }
  }
  return Digest(std::string(hex));
}

Digest Digest::FromBytes(const unsigned char bytes[32]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(64, '0');
  for (int i = 0; i < 32; ++i) {
    hex[2 * i] = kHex[bytes[i] >> 4];
    hex[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return Digest(std::move(hex));
}

Sha256Hasher::Sha256Hasher() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  Reset();
}

Sha256Hasher::~Sha256Hasher() = default;
Sha256Hasher::Sha256Hasher(Sha256Hasher&&) noexcept = default;
Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&&) noexcept = default;

void Sha256Hasher::Reset() {
  // Failure here means OpenSSL is out of memory or broken: nothing sensible to return.
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) {
    std::fprintf(stderr, "fatal: OpenSSL EVP sha256 init failed\n");
    std::abort();
  }
}

void Sha256Hasher::Update(const void* data, size_t size) {
  if (size > 0) {
    EVP_DigestUpdate(ctx_->md, data, size);
  }
}

Digest Sha256Hasher::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, out, &len);
  Digest d = Digest::FromBytes(out);
  Reset();
  return d;
}

Digest Sha256Of(absl::string_view bytes) {
  Sha256Hasher h;
  h.Update(bytes);
  return h.Finish();
}

absl::StatusOr<Digest> Sha256OfFd(int fd, absl::string_view what, int64_t* bytes_read) {
  Sha256Hasher hasher;
  std::vector<char> buf(1 << 16);
  int64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("read ", what));
    }
    if (n == 0) {
      break;
    }
    hasher.Update(buf.data(), static_cast<size_t>(n));
    total += n;
  }
  if (bytes_read != nullptr) {
    *bytes_read = total;
  }
  return hasher.Finish();
}

}  // namespace supermachine::image
