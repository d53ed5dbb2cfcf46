// File: guest-agent/rootfs/overlay_options.cc
// Builds overlayfs mount data.
#include "guest-agent/rootfs/overlay_options.h"

namespace supermachine::agent {
namespace {

std::string Escape(const std::string& path) {
  std::string out;
  out.reserve(path.size());
  for (char c : path) {
    if (c == ':' || c == ',' || c == '\\') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string OverlayMountData(const OverlayLayout& layout) {
  if (layout.lowers_bottom_first.empty() || layout.upper.empty() || layout.work.empty()) {
    return "";
  }
  std::string data = "lowerdir=";
  for (auto it = layout.lowers_bottom_first.rbegin(); it != layout.lowers_bottom_first.rend();
       ++it) {
    if (it != layout.lowers_bottom_first.rbegin()) {
      data.push_back(':');
    }
    data += Escape(*it);
  }
  data += ",upperdir=" + Escape(layout.upper) + ",workdir=" + Escape(layout.work);
  return data;
}

}  // namespace supermachine::agent
