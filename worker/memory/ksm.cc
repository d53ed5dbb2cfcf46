// File: ksm.cc
// MADV_MERGEABLE over guest RAM and the ksmd on/off check.
#include "worker/memory/ksm.h"

#include <errno.h>
#include <sys/mman.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "worker/base/status_macros.h"

namespace supermachine::memory {

absl::Status MarkMergeable(const GuestMemory& mem) {
  if (!mem.is_private()) {
    return absl::FailedPreconditionError(
        "guest RAM is a shared memfd (a booted VM, kept shared so a snapshot can write it out); "
        "KSM merges only private memory, so --ksm takes effect on restored VMs");
  }
  for (const Region& r : mem.regions()) {
    if (madvise(r.host(), r.size, MADV_MERGEABLE) != 0) {
      if (errno == EINVAL) {
        return absl::UnimplementedError(
            "madvise(MADV_MERGEABLE) was refused: this kernel lacks KSM (CONFIG_KSM)");
      }
      return base::ErrnoToStatus(errno, absl::StrCat("madvise(MADV_MERGEABLE) on guest RAM at 0x",
                                                     absl::Hex(r.guest_base)));
    }
  }
  return absl::OkStatus();
}

std::string KsmOffNotice(const std::string& run_path) {
  std::ifstream in(run_path);
  std::string value;
  if (!(in >> value)) {
    return absl::StrCat(run_path, " is unreadable: pages are marked mergeable, but whether "
                        "ksmd merges them is unknown");
  }
  if (value != "1") {
    return absl::StrCat(run_path, " is ", value, ": pages are marked mergeable but nothing "
                        "merges until it is 1 (echo 1 > ", run_path, ")");
  }
  return "";
}

}  // namespace supermachine::memory
