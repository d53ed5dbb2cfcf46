// File: www_authenticate.cc
// A small tokenizer for auth-param lists: token, token "=" ( token / quoted-string ).
#include "daemon/image/www_authenticate.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace supermachine::image {
namespace {

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

class Scanner {
 public:
  explicit Scanner(absl::string_view s) : s_(s) {}
  void SkipSpaces() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  void SkipSpacesAndCommas() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == ',')) {
      ++pos_;
    }
  }
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return s_[pos_]; }
  size_t pos() const { return pos_; }
  void set_pos(size_t p) { pos_ = p; }
  void Advance() { ++pos_; }
  absl::string_view Token() {
    const size_t start = pos_;
    while (pos_ < s_.size() && IsTokenChar(s_[pos_])) {
      ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }
  // token68 additionally allows '/' and trailing '='.
  absl::string_view Token68() {
    const size_t start = pos_;
    while (pos_ < s_.size() && (IsTokenChar(s_[pos_]) || s_[pos_] == '/')) {
      ++pos_;
    }
    while (pos_ < s_.size() && s_[pos_] == '=') {
      ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }
  absl::StatusOr<std::string> Quoted() {
    ++pos_;  // opening quote
    std::string out;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') {
        return out;
      }
      if (c == '\\') {
        if (pos_ >= s_.size()) {
          break;
        }
        c = s_[pos_++];
      }
      out.push_back(c);
    }
    return absl::InvalidArgumentError("WWW-Authenticate: unterminated quoted string");
  }

 private:
  absl::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<AuthChallenge>> ParseWwwAuthenticate(absl::string_view header) {
  std::vector<AuthChallenge> out;
  Scanner sc(header);
  sc.SkipSpacesAndCommas();
  while (!sc.AtEnd()) {
    absl::string_view scheme = sc.Token();
    if (scheme.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("WWW-Authenticate '", header, "': expected an auth scheme"));
    }
    AuthChallenge ch{.scheme = absl::AsciiStrToLower(scheme)};
    sc.SkipSpaces();
    // Parameters until the next "token SP" that starts a new challenge.
    while (!sc.AtEnd()) {
      sc.SkipSpacesAndCommas();
      if (sc.AtEnd()) {
        break;
      }
      const size_t save = sc.pos();
      absl::string_view key = sc.Token();
      sc.SkipSpaces();
      if (key.empty() || sc.AtEnd() || sc.Peek() != '=') {
        // Not "key=": either a token68 credential or the next challenge's scheme.
        sc.set_pos(save);
        if (ch.params.empty() && !key.empty()) {
          absl::string_view t68 = sc.Token68();
          sc.SkipSpaces();
          if (sc.AtEnd() || sc.Peek() == ',') {
            ch.params["token68"] = std::string(t68);
            continue;
          }
          sc.set_pos(save);
        }
        if (key.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "WWW-Authenticate '", header, "': unexpected character at byte ", save));
        }
        break;
      }
      sc.Advance();  // '='
      sc.SkipSpaces();
      std::string value;
      if (!sc.AtEnd() && sc.Peek() == '"') {
        auto q = sc.Quoted();
        if (!q.ok()) {
          return q.status();
        }
        value = *std::move(q);
      } else {
        value = std::string(sc.Token68());
      }
      ch.params[absl::AsciiStrToLower(key)] = std::move(value);
    }
    out.push_back(std::move(ch));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError("WWW-Authenticate header is empty");
  }
  return out;
}

}  // namespace supermachine::image
