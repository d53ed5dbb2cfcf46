// File: convert_test.cc
#include "daemon/api/convert.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::api {
namespace {

using ::testing::HasSubstr;

TEST(SnapshotToProto, MalformedMetadataIsInternalNamingTheSnapshot) {
  store::SnapshotRecord r;
  r.name = "broken";
  r.metadata_json = "{not json";
  v1::Snapshot out;
  absl::Status st = SnapshotToProto(r, &out);
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(st.message(), HasSubstr("'broken'"));
}

TEST(SnapshotToProto, WrongTypedFieldsStayUnset) {
  store::SnapshotRecord r;
  r.name = "odd";
  r.metadata_json = R"({"image": 5, "vcpus": "two"})";
  v1::Snapshot out;
  ASSERT_TRUE(SnapshotToProto(r, &out).ok());
  EXPECT_EQ(out.image(), "");
  EXPECT_EQ(out.vcpus(), 0u);
}

TEST(EndCauseFromName, MapsStoreNamesToApiEnum) {
  EXPECT_EQ(EndCauseFromName(store::EndCauseName(store::EndCause::kWorkerCrash)),
            v1::END_CAUSE_WORKER_CRASH);
  EXPECT_EQ(EndCauseFromName(store::EndCauseName(store::EndCause::kSnapshotIncompatible)),
            v1::END_CAUSE_SNAPSHOT_INCOMPATIBLE);
  EXPECT_EQ(EndCauseFromName("bogus"), v1::END_CAUSE_UNSPECIFIED);
}

}  // namespace
}  // namespace supermachine::api
