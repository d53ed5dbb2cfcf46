// File: kvm_probe.cc
#include "daemon/api/kvm_probe.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace supermachine::api {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// The "flags" lines of /proc/cpuinfo name vmx (Intel VT-x) or svm (AMD-V) when the CPU
// exposes hardware virtualisation to this kernel.
bool CpuHasVirtualization(const std::string& cpuinfo_path) {
  // Whole-word match by splitting (no std::regex: GCC 12's ASan build warns inside it).
  std::ifstream in(cpuinfo_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) {
      continue;
    }
    for (absl::string_view word : absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      if (word == "vmx" || word == "svm") {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

KvmProbe ProbeKvm(const KvmProbePaths& paths) {
  KvmProbe probe;
  const bool dev = Exists(paths.dev_kvm);
  const bool pvm = Exists(paths.pvm_module);
  if (!dev) {
    probe.kind = "absent";
    probe.problems.push_back(absl::StrCat(
        paths.dev_kvm, " is missing: load the KVM module (modprobe kvm_intel or modprobe kvm_amd) "
        "and enable virtualization (VT-x/AMD-V) in the firmware or the hypervisor's VM settings"));
    return probe;
  }
  if (pvm) {
    // kvm_pvm serves /dev/kvm without hardware virtualisation (nested in a cloud VM).
    probe.kind = "pvm";
    probe.problems.push_back(
        "KVM is PVM (kvm_pvm is loaded): stock guest kernels do not boot here; VMs need a "
        "PVM-enabled guest kernel or a host with hardware KVM");
  } else if (CpuHasVirtualization(paths.cpuinfo)) {
    probe.kind = "hardware";
  } else {
    probe.kind = "absent";
    probe.problems.push_back(absl::StrCat(
        paths.dev_kvm, " exists but ", paths.cpuinfo,
        " shows no vmx/svm flag: enable VT-x/AMD-V (or nested virtualization) for this machine"));
    return probe;
  }
  if (::access(paths.dev_kvm.c_str(), R_OK | W_OK) != 0) {
    probe.problems.push_back(absl::StrCat(
        "no read/write access to ", paths.dev_kvm,
        ": run supermachined as root or add its user to the device's group (ls -l ", paths.dev_kvm,
        ", usually 'kvm')"));
  }
  return probe;
}

}  // namespace supermachine::api
