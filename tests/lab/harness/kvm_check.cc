// File: tests/lab/harness/kvm_check.cc
// Lab self-check: the CPU advertises SVM or VMX and /dev/kvm answers as real KVM does
// (API version 12, a VM and a vCPU can be created). Exits 0 and prints one line per check.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace {

int Fail(const char* what) {
  std::printf("kvm_check: FAIL: %s (%s)\n", what, errno != 0 ? std::strerror(errno) : "-");
  return 1;
}

bool CpuHasVirtualization() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) {
      return line.find(" svm") != std::string::npos || line.find(" vmx") != std::string::npos;
    }
  }
  return false;
}

}  // namespace

int main() {
  errno = 0;
  if (!CpuHasVirtualization()) {
    return Fail("/proc/cpuinfo has neither svm nor vmx");
  }
  std::printf("kvm_check: cpu flags have svm/vmx\n");
  if (access("/sys/module/kvm_pvm", F_OK) == 0) {
    return Fail("/dev/kvm is PVM (/sys/module/kvm_pvm exists): Linux guests cannot boot");
  }
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) {
    return Fail("open /dev/kvm");
  }
  int version = ioctl(kvm, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return Fail("KVM_GET_API_VERSION is not 12");
  }
  std::printf("kvm_check: KVM_GET_API_VERSION = %d\n", version);
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) {
    return Fail("KVM_CREATE_VM");
  }
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) {
    return Fail("KVM_CREATE_VCPU");
  }
  std::printf("kvm_check: created a VM and a vCPU\n");
  close(vcpu);
  close(vm);
  close(kvm);
  std::printf("kvm_check: PASS\n");
  return 0;
}
