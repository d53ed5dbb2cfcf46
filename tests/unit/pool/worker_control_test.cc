// File: worker_control_test.cc
// The worker control-socket client (daemon/vm/worker_control.h) that the idle-balloon policy,
// the bake and the network counters share, against a stand-in worker on a Unix socket: the
// line sent, the first reply line returned, and each failure's status code, which callers act
// on (FailedPrecondition: no control socket; Unavailable: worker gone; DeadlineExceeded;
// Internal: not a worker, or, for WorkerControlOk, a refused command).
#include "daemon/vm/worker_control.h"

#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/fake_worker_control.h"
#include "tests/support/temp_dir.h"

namespace supermachine::vm {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kGenerous = absl::Seconds(60);

using test_support::FakeWorkerControl;

TEST(WorkerControl, SendsTheCommandLineAndReturnsTheFirstReplyLine) {
  test_support::TempDir dir;
  FakeWorkerControl worker(dir.Join("control"), "OK balloon-target pages=45875\ntrailing");
  absl::StatusOr<std::string> reply =
      WorkerControl(dir.Join("control"), "balloon-target 45875", absl::Now() + kGenerous);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "OK balloon-target pages=45875");
  EXPECT_EQ(worker.got(), "balloon-target 45875\n");
}

TEST(WorkerControl, ReturnsAnErrReplyAsAReply) {
  test_support::TempDir dir;
  FakeWorkerControl worker(dir.Join("control"), "ERR this VM has no balloon device\n");
  absl::StatusOr<std::string> reply =
      WorkerControl(dir.Join("control"), "balloon", absl::Now() + kGenerous);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "ERR this VM has no balloon device");
}

TEST(WorkerControl, AWorkerClosingWithoutAnswerIsUnavailableNamingTheCommand) {
  test_support::TempDir dir;
  FakeWorkerControl worker(dir.Join("control"), "");
  absl::StatusOr<std::string> reply =
      WorkerControl(dir.Join("control"), "balloon-target 0", absl::Now() + kGenerous);
  EXPECT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr("'balloon-target 0'"));
}

TEST(WorkerControl, AMissingSocketIsUnavailableNamingIt) {
  test_support::TempDir dir;
  absl::StatusOr<std::string> reply =
      WorkerControl(dir.Join("gone"), "stats", absl::Now() + kGenerous);
  EXPECT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr(dir.Join("gone")));
}

TEST(WorkerControl, ASilentWorkerIsDeadlineExceeded) {
  test_support::TempDir dir;
  FakeWorkerControl worker(dir.Join("control"), "", FakeWorkerControl::Then::kHold);
  absl::StatusOr<std::string> reply =
      WorkerControl(dir.Join("control"), "stats", absl::Now() + absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(reply.status())) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr("deadline"));
  EXPECT_THAT(reply.status().message(), HasSubstr(dir.Join("control")));
}

TEST(WorkerControl, AnEndlessReplyIsInternal) {
  test_support::TempDir dir;
  FakeWorkerControl worker(dir.Join("control"), std::string(5000, 'x'),
                           FakeWorkerControl::Then::kHold);
  absl::StatusOr<std::string> reply =
      WorkerControl(dir.Join("control"), "stats", absl::Now() + kGenerous);
  EXPECT_TRUE(absl::IsInternal(reply.status())) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr("no newline"));
}

TEST(WorkerControl, NoControlSocketIsFailedPrecondition) {
  absl::StatusOr<std::string> reply = WorkerControl("", "balloon-target 0", absl::Now());
  EXPECT_TRUE(absl::IsFailedPrecondition(reply.status())) << reply.status();
}

TEST(WorkerControl, ACommandOfTwoLinesIsInvalidArgument) {
  absl::StatusOr<std::string> reply =
      WorkerControl("/nonexistent/control", "snapshot /tmp/x\nexit", absl::Now() + kGenerous);
  EXPECT_TRUE(absl::IsInvalidArgument(reply.status())) << reply.status();
}

TEST(WorkerControlOk, ReturnsAnOkReply) {
  test_support::TempDir dir;
  FakeWorkerControl worker(dir.Join("control"), "OK snapshot written\n");
  absl::StatusOr<std::string> reply =
      WorkerControlOk(dir.Join("control"), "snapshot /tmp/snap", absl::Now() + kGenerous);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "OK snapshot written");
  EXPECT_EQ(worker.got(), "snapshot /tmp/snap\n");
}

TEST(WorkerControlOk, AnErrReplyIsInternalQuotingCommandAndReply) {
  test_support::TempDir dir;
  FakeWorkerControl worker(dir.Join("control"), "ERR snapshot: /tmp/snap exists\n");
  absl::StatusOr<std::string> reply =
      WorkerControlOk(dir.Join("control"), "snapshot /tmp/snap", absl::Now() + kGenerous);
  EXPECT_TRUE(absl::IsInternal(reply.status())) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr("'snapshot /tmp/snap'"));
  EXPECT_THAT(reply.status().message(), HasSubstr("ERR snapshot: /tmp/snap exists"));
}

}  // namespace
}  // namespace supermachine::vm
