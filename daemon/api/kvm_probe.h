// File: kvm_probe.h
// Tells which KVM this host offers, because it decides what can boot: hardware KVM runs any
// guest; PVM (kvm_pvm, paravirtualised KVM inside a cloud VM) runs only PVM-enabled guest
// kernels; without /dev/kvm nothing boots. Paths are injectable so tests use fake trees.
#pragma once

#include <string>
#include <vector>

namespace supermachine::api {

struct KvmProbePaths {
  std::string dev_kvm = "/dev/kvm";
  std::string cpuinfo = "/proc/cpuinfo";
  std::string pvm_module = "/sys/module/kvm_pvm";
};

struct KvmProbe {
  std::string kind;  // "hardware" | "pvm" | "absent"
  // What stops VMs from running here, each with what to do about it. Empty when usable.
  std::vector<std::string> problems;
};

KvmProbe ProbeKvm(const KvmProbePaths& paths);

}  // namespace supermachine::api
