// File: identity.cc
#include "daemon/vm/identity.h"

#include <sys/random.h>

#include <cerrno>

#include "worker/base/status_macros.h"

namespace supermachine::vm {

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::getrandom(out.data() + done, n - done, 0);
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      return base::ErrnoToStatus(errno, "getrandom");
    }
    done += static_cast<size_t>(r);
  }
  return out;
}

absl::StatusOr<std::string> RandomHexId() {
  SM_ASSIGN_OR_RETURN(std::string raw, RandomBytes(16));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

}  // namespace supermachine::vm
