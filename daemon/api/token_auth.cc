// File: token_auth.cc
#include "daemon/api/token_auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::api {
namespace {

// A token file larger than this is not a token (and must not make us read a disk image).
constexpr size_t kMaxTokenFileBytes = 4096;

constexpr char kHowToSend[] =
    "send metadata 'authorization: Bearer <token>' (smctl: --token-file FILE or "
    "SUPERMACHINE_TOKEN_FILE)";

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return base::ErrnoToStatus(errno, absl::StrCat("token file ", path));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("stat token file ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, " is not a regular file"));
  }
  if ((st.st_mode & 0007) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return absl::PermissionDeniedError(absl::StrCat(
        "token file ", path, " has mode ", mode,
        ": it is readable by every user; restrict it (chmod 0600 ", path, ")"));
  }
  if (static_cast<size_t>(st.st_size) > kMaxTokenFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, " is ", st.st_size,
                                                   " bytes; a token is one line"));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("read token file ", path));
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  while (!text.empty() && IsSpace(text.back())) {
    text.pop_back();
  }
  if (text.size() < kMinTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token file ", path, " holds ", text.size(), " bytes; a token needs at least ",
        kMinTokenBytes, " (generate one: openssl rand -hex 32 > ", path, ")"));
  }
  for (char c : text) {
    // Printable ASCII except space: what an HTTP/2 header value carries unchanged.
    if (c <= ' ' || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token file ", path,
          ": the token contains whitespace or control characters; use printable ASCII only"));
    }
  }
  return text;
}

bool TokenEquals(std::string_view presented, std::string_view expected) {
  // Every byte of `expected` is visited whatever `presented` holds; the only branch depends on
  // `presented`'s length, which its sender already knows.
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const char p = i < presented.size() ? presented[i] : 0;
    diff |= static_cast<unsigned char>(p ^ expected[i]);
  }
  return diff == 0;
}

grpc::Status BearerTokenProcessor::Reject(grpc::Status status) const {
  if (on_reject_) {
    on_reject_(status.error_message());
  }
  return status;
}

grpc::Status BearerTokenProcessor::Process(const InputMetadata& auth_metadata,
                                           grpc::AuthContext* /*context*/,
                                           OutputMetadata* consumed_auth_metadata,
                                           OutputMetadata* /*response_metadata*/) {
  constexpr std::string_view kScheme = "Bearer ";
  auto range = auth_metadata.equal_range("authorization");
  if (range.first == range.second) {
    return Reject(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                               absl::StrCat("missing bearer token: ", kHowToSend)));
  }
  if (std::next(range.first) != range.second) {
    return Reject(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                               "more than one authorization header; send exactly one"));
  }
  const std::string_view value(range.first->second.data(), range.first->second.size());
  if (value.size() < kScheme.size() || value.substr(0, kScheme.size()) != kScheme) {
    return Reject(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                               absl::StrCat("authorization is not a bearer token: ", kHowToSend)));
  }
  if (!TokenEquals(value.substr(kScheme.size()), token_)) {
    return Reject(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                               "invalid bearer token: it does not match the daemon's --token-file"));
  }
  consumed_auth_metadata->emplace("authorization", std::string(value));
  return grpc::Status::OK;
}

}  // namespace supermachine::api
