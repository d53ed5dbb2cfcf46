#include "worker/base/status_macros.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace supermachine::base {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) {
    return absl::InvalidArgumentError("odd");
  }
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  SM_ASSIGN_OR_RETURN(int h, Half(x));
  SM_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int x) {
  SM_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacros, AssignOrReturnPassesValues) { EXPECT_EQ(Quarter(8).value(), 2); }

TEST(StatusMacros, AssignOrReturnPropagatesError) {
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StatusMacros, ReturnIfErrorPropagatesError) {
  EXPECT_EQ(CheckEven(3).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
}

TEST(StatusMacros, AnnotateKeepsCodeAndPrefixesContext) {
  absl::Status st = Annotate(absl::NotFoundError("no file"), "restore redis-7");
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "restore redis-7: no file");
}

TEST(StatusMacros, ErrnoToStatusMapsCode) {
  absl::Status st = ErrnoToStatus(ENOENT, "open /x");
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "open /x: No such file or directory");
}

}  // namespace
}  // namespace supermachine::base
