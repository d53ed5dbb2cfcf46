// File: specs.cc
// Parsers and canonical forms for the bake request's spec strings.
#include "daemon/bake/specs.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "worker/base/status_macros.h"

namespace supermachine::bake {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " '", value, "': ", why));
}

// Strict unsigned decimal: digits only (no sign, space or "0x"), no overflow.
std::optional<uint64_t> ParseDecimal(absl::string_view text) {
  if (text.empty() || text.size() > 20) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return std::nullopt;
    }
    value = value * 10 + digit;
  }
  return value;
}

std::optional<uint32_t> ParseU32(absl::string_view text) {
  std::optional<uint64_t> v = ParseDecimal(text);
  if (!v.has_value() || *v > std::numeric_limits<uint32_t>::max()) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(*v);
}

bool IsVolumeNameChar(char c, bool first) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) {
    return true;
  }
  return !first && (c == '_' || c == '.' || c == '-');
}

}  // namespace

absl::Status CheckGuestPath(absl::string_view field, absl::string_view path) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": guest path '", path, "' ", why));
  };
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": guest path is empty"));
  }
  if (path.front() != '/') {
    return bad("must be absolute (start with '/')");
  }
  if (path.find('\0') != absl::string_view::npos || path.find('\n') != absl::string_view::npos) {
    return bad("must not contain NUL or newline");
  }
  if (path == "/") {
    return absl::OkStatus();
  }
  if (path.back() == '/') {
    return bad("must not end with '/'");
  }
  for (absl::string_view part : absl::StrSplit(path.substr(1), '/')) {
    if (part.empty()) {
      return bad("has an empty component ('//')");
    }
    if (part == "." || part == "..") {
      return bad("must not contain '.' or '..' components");
    }
  }
  return absl::OkStatus();
}

// ---- extra files -------------------------------------------------------------------------

absl::StatusOr<ExtraFile> ParseExtraFile(absl::string_view spec) {
  const size_t colon = spec.find(':');
  if (colon == absl::string_view::npos) {
    return Invalid("extra file", spec, "expected HOST_PATH:GUEST_PATH");
  }
  ExtraFile file{.host_path = std::string(spec.substr(0, colon)),
                 .guest_path = std::string(spec.substr(colon + 1))};
  if (file.host_path.empty() || file.host_path.front() != '/') {
    return Invalid("extra file", spec,
                   "host path must be absolute (the daemon does not share your working "
                   "directory)");
  }
  SM_RETURN_IF_ERROR(CheckGuestPath(absl::StrCat("extra file '", spec, "'"), file.guest_path));
  if (file.guest_path == "/") {
    return Invalid("extra file", spec, "guest path must name a file, not '/'");
  }
  return file;
}

std::string ToString(const ExtraFile& file) {
  return absl::StrCat(file.host_path, ":", file.guest_path);
}

// ---- sizes and volumes -------------------------------------------------------------------

absl::StatusOr<uint64_t> ParseSize(absl::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  std::optional<uint64_t> number = ParseDecimal(text.substr(0, digits));
  if (!number.has_value()) {
    return Invalid("size", text, "expected a whole number with an optional K, M, G or T suffix");
  }
  const std::string suffix = absl::AsciiStrToLower(text.substr(digits));
  int shift = 0;
  if (suffix.empty()) {
    shift = 0;
  } else if (suffix == "k" || suffix == "kib") {
    shift = 10;
  } else if (suffix == "m" || suffix == "mib") {
    shift = 20;
  } else if (suffix == "g" || suffix == "gib") {
    shift = 30;
  } else if (suffix == "t" || suffix == "tib") {
    shift = 40;
  } else {
    return Invalid("size", text,
                   "unknown unit; use K, M, G or T (powers of 1024), e.g. 512M or 1G");
  }
  if (*number > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return Invalid("size", text, "too large");
  }
  return *number << shift;
}

std::string FormatSize(uint64_t bytes) {
  static constexpr struct {
    int shift;
    const char* unit;
  } kUnits[] = {{40, "T"}, {30, "G"}, {20, "M"}, {10, "K"}};
  for (const auto& u : kUnits) {
    const uint64_t unit = uint64_t{1} << u.shift;
    if (bytes != 0 && bytes % unit == 0) {
      return absl::StrCat(bytes / unit, u.unit);
    }
  }
  return absl::StrCat(bytes);
}

absl::Status CheckVolume(const Volume& volume) {
  const std::string field = absl::StrCat("volume '", volume.name, "'");
  if (volume.name.empty() || volume.name.size() > 64) {
    return Invalid("volume name", volume.name, "must be 1 to 64 characters");
  }
  for (size_t i = 0; i < volume.name.size(); ++i) {
    if (!IsVolumeNameChar(volume.name[i], i == 0)) {
      return Invalid("volume name", volume.name,
                     "only A-Z, a-z, 0-9 and (after the first) '_', '.' and '-' allowed");
    }
  }
  SM_RETURN_IF_ERROR(CheckGuestPath(field, volume.guest_path));
  if (volume.guest_path == "/") {
    return Invalid(field, volume.guest_path, "a volume cannot be mounted over '/'");
  }
  if (volume.guest_path.find(':') != std::string::npos) {
    return Invalid(field, volume.guest_path, "a volume's guest path cannot contain ':'");
  }
  if (volume.size_bytes < kMinVolumeSizeBytes || volume.size_bytes > kMaxVolumeSizeBytes) {
    return Invalid(field, FormatSize(volume.size_bytes),
                   absl::StrCat("size must be between ", FormatSize(kMinVolumeSizeBytes), " and ",
                                FormatSize(kMaxVolumeSizeBytes)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Volume> ParseVolume(absl::string_view spec) {
  const size_t first = spec.find(':');
  if (first == absl::string_view::npos) {
    return Invalid("volume", spec, "expected NAME:GUEST_PATH[:SIZE]");
  }
  Volume volume{.name = std::string(spec.substr(0, first)),
                .size_bytes = kDefaultVolumeSizeBytes};
  absl::string_view rest = spec.substr(first + 1);
  const size_t last = rest.rfind(':');
  if (last != absl::string_view::npos) {
    absl::StatusOr<uint64_t> size = ParseSize(rest.substr(last + 1));
    if (!size.ok()) {
      return Invalid("volume", spec, size.status().message());
    }
    volume.size_bytes = *size;
    rest = rest.substr(0, last);
  }
  volume.guest_path = std::string(rest);
  if (volume.name.find('/') != std::string::npos) {
    return Invalid("volume", spec,
                   "NAME is a volume name, not a host path (volumes live in the daemon's "
                   "volume directory)");
  }
  SM_RETURN_IF_ERROR(CheckVolume(volume));
  return volume;
}

std::string ToString(const Volume& volume) {
  return absl::StrCat(volume.name, ":", volume.guest_path, ":", FormatSize(volume.size_bytes));
}

std::string VolumeImageRelPath(const Volume& volume) {
  return absl::StrCat(kVolumesSubdir, "/", volume.name, ".img");
}

// ---- restart policy ----------------------------------------------------------------------

absl::StatusOr<RestartPolicy> ParseRestartPolicy(absl::string_view text) {
  if (text.empty() || text == "no") {
    return RestartPolicy{};
  }
  if (text == "always") {
    return RestartPolicy{.kind = RestartPolicy::Kind::kAlways};
  }
  if (text == "on-failure") {
    return RestartPolicy{.kind = RestartPolicy::Kind::kOnFailure};
  }
  absl::string_view count = text;
  if (absl::ConsumePrefix(&count, "on-failure:")) {
    std::optional<uint64_t> n = ParseDecimal(count);
    if (!n.has_value() || *n < 1 || *n > 1'000'000) {
      return Invalid("restart policy", text,
                     "the retry count must be a whole number from 1 to 1000000 (or leave it "
                     "out for no limit)");
    }
    return RestartPolicy{.kind = RestartPolicy::Kind::kOnFailure,
                         .max_retries = static_cast<uint32_t>(*n)};
  }
  if (text == "unless-stopped") {
    return Invalid("restart policy", text,
                   "a VM has no stopped-by-user state to survive; use 'always'");
  }
  return Invalid("restart policy", text, "expected no, on-failure[:N] or always");
}

std::string ToString(const RestartPolicy& policy) {
  switch (policy.kind) {
    case RestartPolicy::Kind::kNo:
      return "no";
    case RestartPolicy::Kind::kAlways:
      return "always";
    case RestartPolicy::Kind::kOnFailure:
      return policy.max_retries == 0 ? std::string("on-failure")
                                     : absl::StrCat("on-failure:", policy.max_retries);
  }
  return "no";
}

// ---- health check ------------------------------------------------------------------------

absl::StatusOr<uint32_t> ParseDurationMs(absl::string_view field, absl::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  std::optional<uint64_t> number = ParseDecimal(text.substr(0, digits));
  const absl::string_view unit = text.substr(digits);
  uint64_t scale = 0;
  if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "ms") {
    scale = 1;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  }
  if (!number.has_value() || scale == 0) {
    return Invalid(field, text,
                   "expected a whole number of seconds, or a number with ms, s, m or h "
                   "(e.g. 30, 500ms, 2m)");
  }
  if (*number > std::numeric_limits<uint32_t>::max() / scale) {
    return Invalid(field, text, "too long");
  }
  return static_cast<uint32_t>(*number * scale);
}

absl::Status CheckHealthCheck(const HealthCheck& health) {
  if (health.cmd.empty() || health.cmd.front().empty()) {
    return absl::InvalidArgumentError("health check: the command is empty");
  }
  if (health.interval_ms < kMinHealthIntervalMs || health.interval_ms > kMaxHealthIntervalMs) {
    return Invalid("health interval", absl::StrCat(health.interval_ms, "ms"),
                   absl::StrCat("must be between ", kMinHealthIntervalMs, "ms and 24h"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<HealthCheck>> ParseHealthCheck(absl::string_view cmd,
                                                            absl::string_view interval) {
  if (cmd.empty()) {
    if (!interval.empty()) {
      return Invalid("health interval", interval, "given without a health command");
    }
    return std::optional<HealthCheck>();
  }
  HealthCheck health{.interval_ms = kDefaultHealthIntervalMs};
  if (cmd.front() == '[') {
    nlohmann::json j = nlohmann::json::parse(cmd.begin(), cmd.end(), nullptr,
                                             /*allow_exceptions=*/false);
    if (!j.is_array()) {
      return Invalid("health command", cmd, "not a JSON array of strings");
    }
    for (const auto& e : j) {
      if (!e.is_string()) {
        return Invalid("health command", cmd, "every element must be a string");
      }
      health.cmd.push_back(e.get<std::string>());
    }
  } else {
    health.cmd = {"/bin/sh", "-c", std::string(cmd)};
  }
  if (!interval.empty()) {
    SM_ASSIGN_OR_RETURN(health.interval_ms, ParseDurationMs("health interval", interval));
  }
  SM_RETURN_IF_ERROR(CheckHealthCheck(health));
  return std::optional<HealthCheck>(std::move(health));
}

// ---- readiness ---------------------------------------------------------------------------

const char* ModeName(Readiness::Mode mode) {
  switch (mode) {
    case Readiness::Mode::kListener:
      return "listener";
    case Readiness::Mode::kExit:
      return "exit";
    case Readiness::Mode::kParked:
      return "parked";
    case Readiness::Mode::kAfter:
      return "after";
  }
  return "?";
}

absl::Status CheckReadiness(const Readiness& r) {
  const std::string text = ToString(r);
  if (r.deadline_ms == 0 || r.deadline_ms > kMaxDeadlineMs) {
    return Invalid("readiness", text, "deadline must be between 1 ms and 3600000 ms (1 h)");
  }
  if (r.mode == Readiness::Mode::kAfter && (r.after_ms == 0 || r.after_ms >= r.deadline_ms)) {
    return Invalid("readiness", text, "after=<ms> must be above 0 and below the deadline");
  }
  if (r.mode == Readiness::Mode::kListener &&
      (r.settle_ms >= r.deadline_ms || r.fallback_ms >= r.deadline_ms)) {
    return Invalid("readiness", text, "settle and fallback must be below the deadline");
  }
  return absl::OkStatus();
}

absl::StatusOr<Readiness> ParseReadiness(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  Readiness r;
  absl::string_view mode = parts.front();
  if (mode == "listener") {
    r.mode = Readiness::Mode::kListener;
  } else if (mode == "exit") {
    r.mode = Readiness::Mode::kExit;
  } else if (mode == "parked") {
    r.mode = Readiness::Mode::kParked;
  } else if (absl::ConsumePrefix(&mode, "after=")) {
    std::optional<uint32_t> ms = ParseU32(mode);
    if (!ms.has_value()) {
      return Invalid("readiness", text, "after=<ms> needs a whole number of milliseconds");
    }
    r.mode = Readiness::Mode::kAfter;
    r.after_ms = *ms;
  } else {
    return Invalid("readiness", text,
                   "expected listener, exit, parked or after=<ms>, optionally followed by "
                   ",deadline=<ms> (and for listener ,settle=<ms> ,fallback=<ms>)");
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(parts[i], '=');
    std::optional<uint32_t> ms = ParseU32(kv.second);
    if (!ms.has_value()) {
      return Invalid("readiness", text,
                     absl::StrCat("option '", parts[i], "' needs =<whole milliseconds>"));
    }
    const bool listener = r.mode == Readiness::Mode::kListener;
    if (kv.first == "deadline") {
      r.deadline_ms = *ms;
    } else if (kv.first == "settle" && listener) {
      r.settle_ms = *ms;
    } else if (kv.first == "fallback" && listener) {
      r.fallback_ms = *ms;
    } else {
      return Invalid("readiness", text,
                     absl::StrCat("unknown option '", kv.first, "' for ", ModeName(r.mode),
                                  " (deadline for every mode; settle, fallback for listener)"));
    }
  }
  SM_RETURN_IF_ERROR(CheckReadiness(r));
  return r;
}

std::string ToString(const Readiness& r) {
  switch (r.mode) {
    case Readiness::Mode::kListener:
      return absl::StrCat("listener,settle=", r.settle_ms, ",fallback=", r.fallback_ms,
                          ",deadline=", r.deadline_ms);
    case Readiness::Mode::kAfter:
      return absl::StrCat("after=", r.after_ms, ",deadline=", r.deadline_ms);
    case Readiness::Mode::kExit:
    case Readiness::Mode::kParked:
      return absl::StrCat(ModeName(r.mode), ",deadline=", r.deadline_ms);
  }
  return "?";
}

}  // namespace supermachine::bake
