// File: guest-agent/net/net_config.cc
#include "guest-agent/net/net_config.h"

#include <arpa/inet.h>

#include <sstream>
#include <vector>

namespace supermachine::agent::net {
namespace {

bool ParseIp4(const std::string& s, in_addr* out) { return inet_pton(AF_INET, s.c_str(), out) == 1; }

}  // namespace

ParsedNet ParseNetCmdline(const std::string& cmdline) {
  ParsedNet out;
  std::istringstream words(cmdline);
  std::string word;
  std::string value;
  bool found = false;
  while (words >> word) {
    if (word.rfind("sm.net=", 0) == 0) {
      value = word.substr(7);
      found = true;
    }
  }
  if (!found) {
    return out;
  }
  std::vector<std::string> parts;
  std::string part;
  std::istringstream fields(value);
  while (std::getline(fields, part, ',')) {
    parts.push_back(part);
  }
  GuestNet n;
  const size_t slash = parts.empty() ? std::string::npos : parts[0].find('/');
  bool ok = parts.size() == 3 && slash != std::string::npos &&
            ParseIp4(parts[0].substr(0, slash), &n.addr) && ParseIp4(parts[1], &n.gateway) &&
            ParseIp4(parts[2], &n.dns);
  if (ok) {
    const std::string len = parts[0].substr(slash + 1);
    ok = !len.empty() && len.size() <= 2 && len.find_first_not_of("0123456789") == std::string::npos;
    n.prefix_len = ok ? std::stoi(len) : 0;
    ok = ok && n.prefix_len >= 1 && n.prefix_len <= 32;
  }
  if (!ok) {
    out.error = "sm.net=" + value + ": expected ADDR/PREFIX,GATEWAY,DNS (IPv4)";
    return out;
  }
  out.net = n;
  return out;
}

}  // namespace supermachine::agent::net
