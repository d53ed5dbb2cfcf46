// File: status_macros.cc
// Context and errno helpers for absl::Status.
#include "worker/base/status_macros.h"

#include <string.h>

#include "absl/strings/str_cat.h"

namespace supermachine::base {

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) {
    return status;
  }
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

absl::Status ErrnoToStatus(int err, absl::string_view context) {
  // absl::ErrnoToStatusCode maps ENOENT→NotFound, EACCES→PermissionDenied, etc.
  char buf[256];
  const char* text = strerror_r(err, buf, sizeof(buf));  // GNU variant returns a char*.
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(context, ": ", text));
}

}  // namespace supermachine::base
