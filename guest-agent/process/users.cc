// File: guest-agent/process/users.cc
// User spec resolution against an image's /etc/passwd and /etc/group (see users.h). The files
// are parsed by hand, not with getpwnam(3): the agent is static (no NSS) and tests point it at
// a temp root.
#include "guest-agent/process/users.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <sstream>

namespace supermachine::agent {
namespace {

std::vector<std::string> SplitColons(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ':')) {
    out.push_back(field);
  }
  if (!line.empty() && line.back() == ':') {
    out.emplace_back();
  }
  return out;
}

// Reads the colon-separated lines of a database file; comments and blank lines skipped. A
// missing file is an empty database (minimal images have none).
std::vector<std::vector<std::string>> ReadDb(const std::string& path) {
  // open(O_CLOEXEC), not std::ifstream: exec resolves users while other threads fork.
  std::string text;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[8192];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) {
        text.append(buf, static_cast<size_t>(n));
      }
    }
    ::close(fd);
  }
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    rows.push_back(SplitColons(line));
  }
  return rows;
}

// A decimal id within [0, 2^32 - 2] (uint32 max is the kernel's "no id").
std::optional<uint32_t> ParseId(std::string_view s) {
  uint32_t value = 0;
  if (s.empty()) {
    return std::nullopt;
  }
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value == UINT32_MAX) {
    return std::nullopt;
  }
  return value;
}

bool IsNumeric(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;
};

std::optional<PasswdEntry> ToPasswd(const std::vector<std::string>& row) {
  // name:password:uid:gid:gecos:home:shell
  if (row.size() < 4) {
    return std::nullopt;
  }
  auto uid = ParseId(row[2]);
  auto gid = ParseId(row[3]);
  if (!uid || !gid) {
    return std::nullopt;
  }
  return PasswdEntry{row[0], *uid, *gid, row.size() > 5 ? row[5] : ""};
}

}  // namespace

UserResult ResolveUser(std::string_view spec, const std::string& root_dir) {
  UserResult result;
  const std::string root = root_dir.empty() || root_dir == "/" ? "" : root_dir;
  const std::string passwd_path = root + "/etc/passwd";
  const std::string group_path = root + "/etc/group";

  std::string_view user_part = spec;
  std::string_view group_part;
  bool has_group = false;
  if (auto colon = spec.find(':'); colon != std::string_view::npos) {
    user_part = spec.substr(0, colon);
    group_part = spec.substr(colon + 1);
    has_group = true;
    if (group_part.empty()) {
      result.error = "user \"" + std::string(spec) + "\": empty group after ':'";
      return result;
    }
  }
  if (user_part.empty()) {
    if (has_group) {
      result.error = "user \"" + std::string(spec) + "\": empty user before ':'";
      return result;
    }
    user_part = "0";
  }

  ResolvedUser& user = result.user;
  std::optional<PasswdEntry> entry;
  const auto passwd = ReadDb(passwd_path);
  if (IsNumeric(user_part)) {
    auto uid = ParseId(user_part);
    if (!uid) {
      result.error = "user \"" + std::string(spec) + "\": uid out of range";
      return result;
    }
    user.uid = *uid;
    for (const auto& row : passwd) {
      auto e = ToPasswd(row);
      if (e && e->uid == *uid) {
        entry = e;
        break;
      }
    }
    // No entry: a bare uid runs with gid 0, as Docker does.
  } else {
    for (const auto& row : passwd) {
      auto e = ToPasswd(row);
      if (e && e->name == user_part) {
        entry = e;
        break;
      }
    }
    if (!entry) {
      result.error = "user \"" + std::string(user_part) + "\" not found in " + passwd_path;
      return result;
    }
    user.uid = entry->uid;
  }
  if (entry) {
    user.gid = entry->gid;
    user.name = entry->name;
    if (!entry->home.empty()) {
      user.home = entry->home;
    }
  }

  const auto groups = ReadDb(group_path);
  if (has_group) {
    if (IsNumeric(group_part)) {
      auto gid = ParseId(group_part);
      if (!gid) {
        result.error = "group \"" + std::string(group_part) + "\": gid out of range";
        return result;
      }
      user.gid = *gid;
    } else {
      bool found = false;
      for (const auto& row : groups) {
        // name:password:gid:members
        if (row.size() >= 3 && row[0] == group_part) {
          if (auto gid = ParseId(row[2])) {
            user.gid = *gid;
            found = true;
            break;
          }
        }
      }
      if (!found) {
        result.error = "group \"" + std::string(group_part) + "\" not found in " + group_path;
        return result;
      }
    }
  }

  user.groups.push_back(user.gid);
  if (!user.name.empty()) {
    for (const auto& row : groups) {
      if (row.size() < 4) {
        continue;
      }
      auto gid = ParseId(row[2]);
      if (!gid) {
        continue;
      }
      std::istringstream members(row[3]);
      std::string member;
      while (std::getline(members, member, ',')) {
        if (member == user.name &&
            std::find(user.groups.begin(), user.groups.end(), *gid) == user.groups.end()) {
          user.groups.push_back(*gid);
        }
      }
    }
  }
  result.ok = true;
  return result;
}

int ApplyUser(const ResolvedUser& user) {
  if (::syscall(SYS_setgroups, user.groups.size(), user.groups.data()) != 0) {
    return -errno;
  }
  if (::syscall(SYS_setgid, user.gid) != 0) {
    return -errno;
  }
  if (::syscall(SYS_setuid, user.uid) != 0) {
    return -errno;
  }
  return 0;
}

}  // namespace supermachine::agent
