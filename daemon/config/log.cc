// File: log.cc
#include "daemon/config/log.h"

#include "absl/strings/str_cat.h"

namespace supermachine::config {
namespace {

bool NeedsQuotes(absl::string_view v) {
  if (v.empty()) {
    return true;
  }
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

void AppendValue(std::string* out, absl::string_view v) {
  if (!NeedsQuotes(v)) {
    out->append(v.data(), v.size());
    return;
  }
  out->push_back('"');
  for (char c : v) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out->push_back(' ');  // other control bytes would break the one-line format
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

}  // namespace

bool ParseLogLevel(absl::string_view text, LogLevel* out) {
  if (text == "debug") {
    *out = LogLevel::kDebug;
  } else if (text == "info") {
    *out = LogLevel::kInfo;
  } else if (text == "warn") {
    *out = LogLevel::kWarn;
  } else if (text == "error") {
    *out = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::string FormatLogLine(LogLevel level, absl::string_view msg, const LogFields& fields) {
  std::string line = absl::StrCat("level=", LogLevelName(level), " msg=");
  // msg is always quoted so a one-word message parses the same as a sentence.
  line.push_back('"');
  for (char c : msg) {
    if (c == '"' || c == '\\') {
      line.push_back('\\');
    }
    line.push_back(c == '\n' ? ' ' : c);
  }
  line.push_back('"');
  for (const auto& [k, v] : fields) {
    line.push_back(' ');
    line.append(k);
    line.push_back('=');
    AppendValue(&line, v);
  }
  return line;
}

void Logger::Log(LogLevel level, absl::string_view msg, const LogFields& fields) {
  if (level < min_level_) {
    return;
  }
  std::string line = FormatLogLine(level, msg, fields);
  line.push_back('\n');
  absl::MutexLock lock(&mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace supermachine::config
