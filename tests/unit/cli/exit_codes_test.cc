// File: exit_codes_test.cc
#include "cli/exit_codes.h"

#include <tuple>

#include "gtest/gtest.h"

namespace supermachine::cli {
namespace {

class ExitCodesTest : public ::testing::TestWithParam<std::tuple<grpc::StatusCode, int>> {};

TEST_P(ExitCodesTest, MapsCode) {
  EXPECT_EQ(ExitCodeForGrpc(std::get<0>(GetParam())), std::get<1>(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(
    Table, ExitCodesTest,
    ::testing::Values(std::make_tuple(grpc::StatusCode::OK, 0),
                      std::make_tuple(grpc::StatusCode::INVALID_ARGUMENT, 2),
                      std::make_tuple(grpc::StatusCode::NOT_FOUND, 3),
                      std::make_tuple(grpc::StatusCode::PERMISSION_DENIED, 4),
                      std::make_tuple(grpc::StatusCode::UNAUTHENTICATED, 4),
                      std::make_tuple(grpc::StatusCode::UNIMPLEMENTED, 5),
                      std::make_tuple(grpc::StatusCode::UNAVAILABLE, 69),
                      std::make_tuple(grpc::StatusCode::DEADLINE_EXCEEDED, 124),
                      std::make_tuple(grpc::StatusCode::FAILED_PRECONDITION, 1),
                      std::make_tuple(grpc::StatusCode::INTERNAL, 1),
                      std::make_tuple(grpc::StatusCode::RESOURCE_EXHAUSTED, 1)));

}  // namespace
}  // namespace supermachine::cli
