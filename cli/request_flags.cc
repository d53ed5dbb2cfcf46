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

}  // namespace supermachine::cli
