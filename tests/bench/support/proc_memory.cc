// File: proc_memory.cc
#include "tests/bench/support/proc_memory.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace supermachine::bench {

ProcessMemory ReadProcessMemory(pid_t pid, const std::string& guest_memory_file) {
  struct Vma {
    std::string name;
    double rss = 0, priv = 0, dirty = 0, pss = 0, anon = 0;
  };
  std::vector<Vma> vmas;
  std::ifstream in(absl::StrCat("/proc/", pid, "/smaps"));
  ProcessMemory r;
  r.ok = in.good();
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    if (!key.empty() && key.back() != ':') {
      // A mapping header: "start-end perms offset dev inode [path]".
      std::string perms, offset, dev, inode, path;
      ls >> perms >> offset >> dev >> inode;
      std::getline(ls, path);
      path.erase(0, std::min(path.size(), path.find_first_not_of(' ')));
      vmas.push_back({.name = path.empty() ? "[anon]" : path});
      continue;
    }
    double kb = 0;
    if (vmas.empty() || !(ls >> kb)) {
      continue;
    }
    Vma& v = vmas.back();
    const double mib = kb / 1024;
    if (key == "Rss:") {
      v.rss = mib;
    } else if (key == "Private_Clean:") {
      v.priv += mib;
    } else if (key == "Private_Dirty:") {
      v.priv += mib;
      v.dirty = mib;
    } else if (key == "Pss:") {
      v.pss = mib;
    } else if (key == "Anonymous:") {
      v.anon = mib;
    }
  }
  std::vector<std::pair<double, std::string>> others;
  for (const Vma& v : vmas) {
    r.private_mib += v.priv;
    r.private_dirty_mib += v.dirty;
    r.pss_mib += v.pss;
    r.rss_mib += v.rss;
    if (!guest_memory_file.empty() && v.name == guest_memory_file) {
      r.guest_written_mib += v.anon;
      r.guest_read_mib += v.rss - v.anon;
      r.guest_file_private_mib += v.priv - v.anon;
    } else {
      r.other_private_mib += v.priv;
      r.other_anon_mib += v.anon;
      others.emplace_back(v.priv, v.name);
    }
  }
  std::sort(others.rbegin(), others.rend());
  for (size_t i = 0; i < std::min<size_t>(5, others.size()); ++i) {
    r.top_other.push_back(
        absl::StrFormat("%s: %.0f KiB", others[i].second, others[i].first * 1024));
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  while (std::getline(status, line)) {
    if (line.rfind("VmPTE:", 0) == 0) {
      r.page_tables_mib = std::stod(line.substr(6)) / 1024;
    }
  }
  return r;
}

namespace {

std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/task/", pid, "/children"));
  std::vector<pid_t> out;
  pid_t child = 0;
  while (in >> child) {
    out.push_back(child);
  }
  return out;
}

}  // namespace

ProcessMemory ReadProcessTreeMemory(pid_t pid, const std::string& guest_memory_file) {
  ProcessMemory sum = ReadProcessMemory(pid, guest_memory_file);
  if (!sum.ok) {
    return sum;
  }
  double top_private = sum.private_mib;
  std::vector<pid_t> todo = ChildrenOf(pid);
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    const ProcessMemory m = ReadProcessMemory(p, guest_memory_file);
    if (!m.ok) {
      continue;  // ended meanwhile
    }
    sum.private_mib += m.private_mib;
    sum.private_dirty_mib += m.private_dirty_mib;
    sum.pss_mib += m.pss_mib;
    sum.rss_mib += m.rss_mib;
    sum.guest_written_mib += m.guest_written_mib;
    sum.guest_read_mib += m.guest_read_mib;
    sum.guest_file_private_mib += m.guest_file_private_mib;
    sum.other_private_mib += m.other_private_mib;
    sum.other_anon_mib += m.other_anon_mib;
    sum.page_tables_mib += m.page_tables_mib;
    if (m.private_mib > top_private) {
      top_private = m.private_mib;
      sum.top_other = m.top_other;
    }
    const std::vector<pid_t> children = ChildrenOf(p);
    todo.insert(todo.end(), children.begin(), children.end());
  }
  return sum;
}

double MemAvailableMib() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") {
      return kb / 1024;
    }
  }
  return -1;
}

}  // namespace supermachine::bench
