// File: request_flags.cc
#include "cli/request_flags.h"

#include <cstdint>
#include <vector>

namespace supermachine::cli {
namespace {

bool ParsePort(const std::string& text, bool allow_zero, uint32_t* out) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  uint32_t v = static_cast<uint32_t>(std::stoul(text));
  if (v > 65535 || (v == 0 && !allow_zero)) {
    return false;
  }
  *out = v;
  return true;
}

}  // namespace

grpc::Status ParsePortFlag(const std::string& text, v1::PortForward* out) {
  auto bad = [&]() {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "-p '" + text + "': expected HOST_PORT:GUEST_PORT or "
                        "ADDRESS:HOST_PORT:GUEST_PORT, e.g. -p 8080:80");
  };
  size_t last = text.rfind(':');
  if (last == std::string::npos) {
    return bad();
  }
  size_t prev = last == 0 ? std::string::npos : text.rfind(':', last - 1);
  std::string address;
  std::string host;
  if (prev == std::string::npos) {
    host = text.substr(0, last);
  } else {
    address = text.substr(0, prev);
    host = text.substr(prev + 1, last - prev - 1);
    if (address.empty()) {
      return bad();
    }
  }
  uint32_t host_port = 0;
  uint32_t guest_port = 0;
  if (!ParsePort(host, /*allow_zero=*/true, &host_port) ||
      !ParsePort(text.substr(last + 1), /*allow_zero=*/false, &guest_port)) {
    return bad();
  }
  out->set_host_address(address);
  out->set_host_port(host_port);
  out->set_guest_port(guest_port);
  return grpc::Status::OK;
}

grpc::Status CheckEnvFlag(const std::string& text) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "-e '" + text + "': expected KEY=VALUE, e.g. -e PORT=8080");
  }
  return grpc::Status::OK;
}

grpc::Status ParseDurationFlag(const std::string& flag, const std::string& text, uint32_t* ms) {
  const grpc::Status bad(grpc::StatusCode::INVALID_ARGUMENT,
                         flag + " '" + text + "': expected a duration such as 500ms, 30s, 1m30s");
  if (text == "0") {
    *ms = 0;
    return grpc::Status::OK;
  }
  uint64_t total = 0;
  size_t i = 0;
  if (text.empty()) {
    return bad;
  }
  while (i < text.size()) {
    uint64_t n = 0;
    const size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + static_cast<uint64_t>(text[i] - '0');
      if (n > UINT32_MAX) {
        return bad;
      }
      ++i;
    }
    if (i == start) {
      return bad;
    }
    uint64_t unit = 0;
    if (text.compare(i, 2, "ms") == 0) {
      unit = 1;
      i += 2;
    } else if (i < text.size() && text[i] == 's') {
      unit = 1000;
      ++i;
    } else if (i < text.size() && text[i] == 'm') {
      unit = 60'000;
      ++i;
    } else if (i < text.size() && text[i] == 'h') {
      unit = 3'600'000;
      ++i;
    } else {
      return bad;
    }
    total += n * unit;
    if (total > UINT32_MAX) {
      return bad;
    }
  }
  *ms = static_cast<uint32_t>(total);
  return grpc::Status::OK;
}

}  // namespace supermachine::cli
