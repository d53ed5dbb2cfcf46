// File: token_auth_test.cc
// daemon/api/token_auth: the token file rules, the constant-time compare, and the metadata
// processor's verdicts. (Here, with the service-manager tests, because remote access and
// service managers are one piece of work; the gRPC behaviour end to end is in
// tests/integration/remote/.)
#include "daemon/api/token_auth.h"

#include <sys/stat.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::api {
namespace {

using ::testing::HasSubstr;

constexpr char kToken[] = "0123456789abcdef0123456789abcdef";

std::string WriteToken(const test_support::TempDir& dir, const std::string& text, mode_t mode) {
  const std::string path = dir.Join("token");
  test_support::WriteFileOrDie(path, text);
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(ReadTokenFile, TrailingNewlineIsNotPartOfTheToken) {
  test_support::TempDir dir;
  absl::StatusOr<std::string> t = ReadTokenFile(WriteToken(dir, std::string(kToken) + "\n", 0600));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, kToken);
}

TEST(ReadTokenFile, WorldReadableFileIsRefused) {
  test_support::TempDir dir;
  absl::StatusOr<std::string> t = ReadTokenFile(WriteToken(dir, kToken, 0644));
  EXPECT_EQ(t.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(t.status().message(), HasSubstr("chmod 0600"));
}

TEST(ReadTokenFile, ShortTokenIsRefused) {
  test_support::TempDir dir;
  absl::StatusOr<std::string> t = ReadTokenFile(WriteToken(dir, "secret\n", 0600));
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("openssl rand -hex 32"));
}

TEST(ReadTokenFile, InnerWhitespaceIsRefused) {
  test_support::TempDir dir;
  absl::StatusOr<std::string> t =
      ReadTokenFile(WriteToken(dir, "0123456789abcdef 0123456789abcdef", 0600));
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReadTokenFile, MissingFileIsNamed) {
  absl::StatusOr<std::string> t = ReadTokenFile("/nonexistent/token");
  EXPECT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("/nonexistent/token"));
}

TEST(TokenEquals, ExactMatchOnly) {
  EXPECT_TRUE(TokenEquals(kToken, kToken));
  EXPECT_FALSE(TokenEquals("", kToken));
  EXPECT_FALSE(TokenEquals("0123456789abcdef0123456789abcdeF", kToken));
  EXPECT_FALSE(TokenEquals("0123456789abcdef0123456789abcde", kToken));    // prefix
  EXPECT_FALSE(TokenEquals("0123456789abcdef0123456789abcdef0", kToken));  // longer
  // Bytes past the end of `presented` are compared against 0, never matched by NULs.
  EXPECT_FALSE(TokenEquals(std::string_view("ab\0", 3), std::string_view("ab", 2)));
}

grpc::Status Process(BearerTokenProcessor& p, const std::vector<std::pair<std::string, std::string>>& md,
                 grpc::AuthMetadataProcessor::OutputMetadata* consumed) {
  grpc::AuthMetadataProcessor::InputMetadata in;
  for (const auto& [k, v] : md) {
    in.emplace(grpc::string_ref(k), grpc::string_ref(v));
  }
  grpc::AuthMetadataProcessor::OutputMetadata response;
  return p.Process(in, nullptr, consumed, &response);
}

TEST(BearerTokenProcessor, RightTokenPassesAndIsConsumed) {
  BearerTokenProcessor p(kToken, nullptr);
  grpc::AuthMetadataProcessor::OutputMetadata consumed;
  const std::vector<std::pair<std::string, std::string>> md = {
      {"authorization", std::string("Bearer ") + kToken}, {"user-agent", "x"}};
  grpc::Status st = Process(p, md, &consumed);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(consumed.count("authorization"), 1u);
}

TEST(BearerTokenProcessor, RefusalsAreUnauthenticatedAndReported) {
  std::vector<std::string> reasons;
  BearerTokenProcessor p(kToken, [&reasons](const std::string& r) { reasons.push_back(r); });
  grpc::AuthMetadataProcessor::OutputMetadata consumed;
  const std::vector<std::pair<std::string, std::string>> none = {};
  const std::vector<std::pair<std::string, std::string>> wrong = {
      {"authorization", "Bearer 0123456789abcdef0123456789abcdeX"}};
  const std::vector<std::pair<std::string, std::string>> basic = {
      {"authorization", "Basic dXNlcjpwYXNz"}};
  const std::vector<std::pair<std::string, std::string>> twice = {
      {"authorization", std::string("Bearer ") + kToken},
      {"authorization", std::string("Bearer ") + kToken}};
  grpc::Status st = Process(p, none, &consumed);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(st.error_message(), HasSubstr("missing bearer token"));
  st = Process(p, wrong, &consumed);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(st.error_message(), HasSubstr("invalid bearer token"));
  st = Process(p, basic, &consumed);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(st.error_message(), HasSubstr("not a bearer token"));
  st = Process(p, twice, &consumed);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(consumed.empty());
  EXPECT_EQ(reasons.size(), 4u);
  for (const std::string& r : reasons) {
    EXPECT_THAT(r, ::testing::Not(HasSubstr("0123456789abcdef")));  // never the secret
  }
}

}  // namespace
}  // namespace supermachine::api
