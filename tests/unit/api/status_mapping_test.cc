// File: status_mapping_test.cc
#include "daemon/api/status_mapping.h"

#include <tuple>

#include "gtest/gtest.h"

namespace supermachine::api {
namespace {

class StatusMappingTest
    : public ::testing::TestWithParam<std::tuple<absl::StatusCode, grpc::StatusCode>> {};

TEST_P(StatusMappingTest, MapsCodeAndKeepsMessage) {
  const auto [absl_code, grpc_code] = GetParam();
  grpc::Status out = ToGrpcStatus(absl::Status(absl_code, "snapshot 'x' not found"));
  EXPECT_EQ(out.error_code(), grpc_code);
  EXPECT_EQ(out.error_message(), "snapshot 'x' not found");
}

INSTANTIATE_TEST_SUITE_P(
    AllCanonicalCodes, StatusMappingTest,
    ::testing::Values(
        std::make_tuple(absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED),
        std::make_tuple(absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN),
        std::make_tuple(absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT),
        std::make_tuple(absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED),
        std::make_tuple(absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND),
        std::make_tuple(absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS),
        std::make_tuple(absl::StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED),
        std::make_tuple(absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED),
        std::make_tuple(absl::StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION),
        std::make_tuple(absl::StatusCode::kAborted, grpc::StatusCode::ABORTED),
        std::make_tuple(absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE),
        std::make_tuple(absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED),
        std::make_tuple(absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL),
        std::make_tuple(absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE),
        std::make_tuple(absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS),
        std::make_tuple(absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED)));

TEST(StatusMapping, OkStaysOkWithoutMessage) {
  grpc::Status out = ToGrpcStatus(absl::OkStatus());
  EXPECT_TRUE(out.ok());
  EXPECT_EQ(out.error_message(), "");
}

TEST(StatusMapping, CodeOutsideTheCanonicalSetBecomesUnknown) {
  grpc::Status out = ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(99), "odd"));
  EXPECT_EQ(out.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(out.error_message(), "odd");
}

TEST(StatusMapping, CodeNamesAreGrpcSpellings) {
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::FAILED_PRECONDITION), "FAILED_PRECONDITION");
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::OK), "OK");
}

}  // namespace
}  // namespace supermachine::api
