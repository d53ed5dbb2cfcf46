// File: log.h
// Structured log lines for stderr, in the logfmt shape journald and log shippers parse:
//   level=info msg="store opened" path=/var/lib/supermachine/store.db
// The Logger is made in main and passed down; there is no global logger.
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace supermachine::config {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// "debug" | "info" | "warn" | "error"; false for anything else.
bool ParseLogLevel(absl::string_view text, LogLevel* out);
const char* LogLevelName(LogLevel level);

using LogFields = std::vector<std::pair<std::string, std::string>>;

// One line without the trailing newline. Values with spaces, quotes, '=' or control
// characters are quoted with \" \\ \n escapes; empty values print as "".
std::string FormatLogLine(LogLevel level, absl::string_view msg, const LogFields& fields);

class Logger {
 public:
  Logger(std::FILE* out, LogLevel min_level) : out_(out), min_level_(min_level) {}
  // Thread-safe: whole lines, never interleaved.
  void Log(LogLevel level, absl::string_view msg, const LogFields& fields = {});
  void Info(absl::string_view msg, const LogFields& fields = {}) { Log(LogLevel::kInfo, msg, fields); }
  void Warn(absl::string_view msg, const LogFields& fields = {}) { Log(LogLevel::kWarn, msg, fields); }
  void Error(absl::string_view msg, const LogFields& fields = {}) { Log(LogLevel::kError, msg, fields); }

 private:
  std::FILE* out_;
  LogLevel min_level_;
  absl::Mutex mu_;
};

}  // namespace supermachine::config
