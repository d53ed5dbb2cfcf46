// File: status_macros.h
// Early-return helpers for absl::Status / absl::StatusOr. Debian 12's Abseil (20220623)
// predates absl/status/status_macros.h, so the project carries these two macros once, here.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define SM_STATUS_CONCAT_INNER_(a, b) a##b
#define SM_STATUS_CONCAT_(a, b) SM_STATUS_CONCAT_INNER_(a, b)

// SM_RETURN_IF_ERROR(expr): evaluates expr (a Status); returns it from the caller if not OK.
#define SM_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::absl::Status sm_status_ = (expr);          \
    if (!sm_status_.ok()) return sm_status_;     \
  } while (0)

// SM_ASSIGN_OR_RETURN(lhs, expr): evaluates expr (a StatusOr<T>); on error returns its
// status, else move-assigns the value to lhs (which may be a declaration: `auto x`).
#define SM_ASSIGN_OR_RETURN(lhs, expr) \
  SM_ASSIGN_OR_RETURN_IMPL_(SM_STATUS_CONCAT_(sm_statusor_, __LINE__), lhs, expr)

// NOLINTBEGIN(bugprone-macro-parentheses): lhs may be a declaration (`auto x`).
#define SM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
// NOLINTEND(bugprone-macro-parentheses)

namespace supermachine::base {

// Prefixes a non-OK status message with context, keeping its code:
// Annotate(st, "restore redis-7") → "restore redis-7: <original message>".
absl::Status Annotate(const absl::Status& status, absl::string_view context);

// Status from errno with the strerror text: ErrnoToStatus(errno, "open /x") →
// e.g. NotFound("open /x: No such file or directory").
absl::Status ErrnoToStatus(int err, absl::string_view context);

}  // namespace supermachine::base
