// File: reference.cc
// Image reference grammar (after distribution/reference) and Docker Hub normalisation.
#include "daemon/image/reference.h"

#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace supermachine::image {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | "__" | "-"+
bool ValidPathComponent(absl::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) {
    return false;
  }
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) {
      ++j;
    }
    absl::string_view sep = c.substr(i, j - i);
    const bool dashes = sep.find_first_not_of('-') == absl::string_view::npos;
    if (!(sep == "_" || sep == "." || sep == "__" || dashes)) {
      return false;
    }
    i = j;
  }
  return true;
}

// domain := component ('.' component)* [':' port]; component := [A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?
// Also accepts a bracketed IPv6 literal "[::1]:5000".
bool ValidDomain(absl::string_view d) {
  if (d.empty()) {
    return false;
  }
  absl::string_view host = d;
  absl::string_view port;
  if (d.front() == '[') {
    const size_t close = d.find(']');
    if (close == absl::string_view::npos) {
      return false;
    }
    host = d.substr(1, close - 1);
    absl::string_view rest = d.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return false;
      }
      port = rest.substr(1);
      if (port.empty()) {
        return false;
      }
    }
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != absl::string_view::npos) {
      return false;
    }
  } else {
    const size_t colon = d.find(':');
    if (colon != absl::string_view::npos) {
      host = d.substr(0, colon);
      port = d.substr(colon + 1);
      if (port.empty()) {
        return false;
      }
    }
    for (absl::string_view comp : absl::StrSplit(host, '.')) {
      if (comp.empty() || comp.front() == '-' || comp.back() == '-') {
        return false;
      }
      for (char c : comp) {
        if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') {
          return false;
        }
      }
    }
  }
  if (!port.empty() && (port.size() > 5 || port.find_first_not_of("0123456789") != absl::string_view::npos)) {
    return false;
  }
  return true;
}

bool ValidTag(absl::string_view t) {
  if (t.empty() || t.size() > kMaxTagLength) {
    return false;
  }
  auto word = [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(t.front())) {
    return false;
  }
  for (char c : t) {
    if (!word(c) && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

absl::Status RefError(absl::string_view text, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("image ref '", text, "': ", what));
}

}  // namespace

std::string Reference::ManifestReference() const {
  return digest.has_value() ? digest->ToString() : tag;
}

std::string Reference::ToString() const {
  std::string out = absl::StrCat(registry, "/", repository);
  if (!tag.empty()) {
    absl::StrAppend(&out, ":", tag);
  }
  if (digest.has_value()) {
    absl::StrAppend(&out, "@", digest->ToString());
  }
  return out;
}

absl::StatusOr<Reference> ParseReference(absl::string_view text) {
  if (text.empty()) {
    return absl::InvalidArgumentError("image ref is empty");
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return RefError(text, "contains whitespace or a non-ASCII/control character");
    }
  }
  Reference ref;
  absl::string_view rest = text;

  // 1. "@digest" suffix.
  const size_t at = rest.find('@');
  if (at != absl::string_view::npos) {
    absl::string_view digest_text = rest.substr(at + 1);
    auto digest = Digest::Parse(digest_text);
    if (!digest.ok()) {
      return RefError(text, absl::StrCat("invalid digest '", digest_text, "' (want sha256:<64 lowercase hex>)"));
    }
    ref.digest = *std::move(digest);
    rest = rest.substr(0, at);
  }

  // 2. ":tag" suffix: the first ':' after the last '/' (a ':' before a '/' is a port).
  const size_t last_slash = rest.rfind('/');
  const size_t tag_colon =
      rest.find(':', last_slash == absl::string_view::npos ? 0 : last_slash + 1);
  absl::string_view name = rest;
  if (tag_colon != absl::string_view::npos) {
    absl::string_view tag = rest.substr(tag_colon + 1);
    if (!ValidTag(tag)) {
      return RefError(text, absl::StrCat("invalid tag '", tag, "' (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"));
    }
    ref.tag = std::string(tag);
    name = rest.substr(0, tag_colon);
  }
  if (name.empty()) {
    return RefError(text, "missing repository name");
  }

  // 3. Domain: the first component when followed by '/' and it looks like a host.
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  absl::string_view domain;
  size_t first_path = 0;
  if (parts.size() > 1) {
    absl::string_view first = parts[0];
    const bool looks_like_host = absl::StrContains(first, '.') || absl::StrContains(first, ':') ||
                                 first == "localhost" || absl::AsciiStrToLower(first) != first;
    if (looks_like_host) {
      if (!ValidDomain(first)) {
        return RefError(text, absl::StrCat("invalid registry host '", first, "'"));
      }
      domain = first;
      first_path = 1;
    }
  }
  for (size_t i = first_path; i < parts.size(); ++i) {
    absl::string_view c = parts[i];
    if (c.empty()) {
      return RefError(text, "empty path component (check for '//' or a trailing '/')");
    }
    if (absl::AsciiStrToLower(c) != c) {
      return RefError(text, absl::StrCat("repository name must be lowercase ('", c, "')"));
    }
    if (!ValidPathComponent(c)) {
      return RefError(text, absl::StrCat("invalid repository name component '", c,
                                          "' (allowed: a-z 0-9, separated by '.', '_', '__' or '-')"));
    }
  }
  std::vector<absl::string_view> path(parts.begin() + first_path, parts.end());
  ref.repository = absl::StrJoin(path, "/");

  if (domain.empty() || domain == kDockerHubDomain || domain == "index.docker.io" ||
      domain == kDockerHubRegistry) {
    ref.registry = kDockerHubRegistry;
    if (path.size() == 1) {
      ref.repository = absl::StrCat("library/", ref.repository);
    }
  } else {
    ref.registry = std::string(domain);
  }
  // Docker limits the normalised name ("docker.io/library/x"), so the limit holds for any
  // spelling of the same name and normalising never produces an unparsable ref.
  const size_t canonical_length =
      (ref.IsDockerHub() ? std::strlen(kDockerHubDomain) : ref.registry.size()) + 1 +
      ref.repository.size();
  if (canonical_length > kMaxNameLength) {
    return RefError(text, absl::StrCat("repository name longer than ", kMaxNameLength,
                                       " characters (including the registry)"));
  }
  if (ref.tag.empty() && !ref.digest.has_value()) {
    ref.tag = "latest";
  }
  return ref;
}

bool IsLoopbackRegistry(absl::string_view registry) {
  absl::string_view host = registry;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    host = close == absl::string_view::npos ? host.substr(1) : host.substr(1, close - 1);
    return host == "::1";
  }
  const size_t colon = host.find(':');
  if (colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host == "localhost") {
    return true;
  }
  // 127.0.0.0/8 as a numeric dotted quad only: "127.example.com" is a public name.
  std::vector<absl::string_view> octets = absl::StrSplit(host, '.');
  if (octets.size() != 4 || octets[0] != "127") {
    return false;
  }
  for (absl::string_view o : octets) {
    if (o.empty() || o.size() > 3 || o.find_first_not_of("0123456789") != absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace supermachine::image
