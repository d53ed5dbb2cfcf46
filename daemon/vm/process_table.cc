// File: process_table.cc
#include "daemon/vm/process_table.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace supermachine::vm {
namespace {

constexpr absl::Duration kGonePoll = absl::Milliseconds(20);

}  // namespace

absl::StatusOr<ProcStat> ParseProcStat(const std::string& line) {
  // Fields resume after the last ')': the command name may contain anything.
  size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) {
    return absl::InternalError("unparsable /proc/<pid>/stat line");
  }
  std::vector<std::string> fields =
      absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state), so field 22 is fields[19].
  ProcStat out;
  if (fields.size() < 20 || fields[0].size() != 1 || !absl::SimpleAtoi(fields[1], &out.ppid) ||
      !absl::SimpleAtoi(fields[19], &out.start_time)) {
    return absl::InternalError("unparsable /proc/<pid>/stat line");
  }
  out.state = fields[0][0];
  return out;
}

std::string WorkerVmDirOf(const std::vector<std::string>& argv) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == "--control") {
      std::filesystem::path control(argv[i + 1]);
      if (control.filename() != "control" || !control.has_parent_path()) {
        return "";
      }
      return control.parent_path().parent_path().string();
    }
  }
  return "";
}

std::vector<int> ProcFs::Pids() const {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root_, ec)) {
    int pid = 0;
    if (absl::SimpleAtoi(entry.path().filename().string(), &pid) && pid > 0) {
      out.push_back(pid);
    }
  }
  return out;
}

std::optional<int64_t> ProcFs::StartTime(int pid) const {
  std::ifstream in(absl::StrCat(root_, "/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) {
    return std::nullopt;
  }
  absl::StatusOr<ProcStat> st = ParseProcStat(line);
  if (!st.ok() || st->state == 'Z' || st->state == 'X') {
    return std::nullopt;
  }
  return st->start_time;
}

std::optional<int> ProcFs::ParentPid(int pid) const {
  std::ifstream in(absl::StrCat(root_, "/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) {
    return std::nullopt;
  }
  absl::StatusOr<ProcStat> st = ParseProcStat(line);
  if (!st.ok()) {
    return std::nullopt;
  }
  return st->ppid;
}

std::vector<std::string> ProcFs::Argv(int pid) const {
  std::ifstream in(absl::StrCat(root_, "/", pid, "/cmdline"), std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (all.empty()) {
    return {};
  }
  if (all.back() == '\0') {
    all.pop_back();
  }
  return absl::StrSplit(all, '\0');
}

void ProcFs::Signal(int pid, int sig) {
  if (pid <= 1) {
    return;  // never the whole system or init
  }
  if (::getpgid(pid) == pid) {
    ::kill(-pid, sig);
  } else {
    ::kill(pid, sig);
  }
}

bool WaitGone(const ProcessTable& procs, int pid, int64_t start_time, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (true) {
    std::optional<int64_t> now = procs.StartTime(pid);
    if (!now || *now != start_time) {
      return true;
    }
    if (absl::Now() >= end) {
      return false;
    }
    absl::SleepFor(kGonePoll);
  }
}

}  // namespace supermachine::vm
