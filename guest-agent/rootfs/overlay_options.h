// File: guest-agent/rootfs/overlay_options.h
// The overlayfs mount data string for the container root. Pure, so it is unit-tested.
#pragma once

#include <string>
#include <vector>

namespace supermachine::agent {

struct OverlayLayout {
  // Read-only layers, lowest first (OCI order); the delta disk comes last (it is topmost).
  std::vector<std::string> lowers_bottom_first;
  std::string upper;  // Writable upper directory.
  std::string work;   // overlayfs work directory, same filesystem as `upper`.
};

// "lowerdir=<top>:…:<bottom>,upperdir=…,workdir=…" — overlayfs lists lowers uppermost first.
// ':' ',' and '\' inside paths are backslash-escaped as overlayfs' option parser expects.
// Returns "" when there is no lower layer or no upper/work (not mountable).
std::string OverlayMountData(const OverlayLayout& layout);

}  // namespace supermachine::agent
