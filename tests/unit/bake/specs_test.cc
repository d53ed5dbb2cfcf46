// File: specs_test.cc
// The spec-string syntaxes of a bake request: what each parser accepts, what it rejects and
// with which message, and that canonical forms parse back to equal values.
#include "daemon/bake/specs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::bake {
namespace {

using ::testing::HasSubstr;

// ---- guest paths ----

TEST(CheckGuestPath, AcceptsAbsolutePath) {
  EXPECT_TRUE(CheckGuestPath("f", "/etc/app.conf").ok());
}

TEST(CheckGuestPath, RejectsRelativePathNamingFieldAndValue) {
  absl::Status st = CheckGuestPath("extra file 'x'", "etc/app.conf");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "extra file 'x': guest path 'etc/app.conf' must be absolute (start with '/')");
}

TEST(CheckGuestPath, RejectsDotDotComponent) {
  EXPECT_THAT(CheckGuestPath("f", "/etc/../root").message(), HasSubstr("'..'"));
}

TEST(CheckGuestPath, RejectsDoubleSlash) {
  EXPECT_THAT(CheckGuestPath("f", "/etc//x").message(), HasSubstr("empty component"));
}

TEST(CheckGuestPath, RejectsTrailingSlash) {
  EXPECT_THAT(CheckGuestPath("f", "/etc/").message(), HasSubstr("end with '/'"));
}

TEST(CheckGuestPath, RejectsNewline) {
  EXPECT_THAT(CheckGuestPath("f", "/etc/a\nb").message(), HasSubstr("newline"));
}

// ---- extra files ----

TEST(ParseExtraFile, SplitsAtFirstColon) {
  absl::StatusOr<ExtraFile> f = ParseExtraFile("/host/app.conf:/etc/app.conf");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->host_path, "/host/app.conf");
  EXPECT_EQ(f->guest_path, "/etc/app.conf");
}

TEST(ParseExtraFile, RejectsMissingColon) {
  EXPECT_THAT(ParseExtraFile("/host/app.conf").status().message(),
              HasSubstr("extra file '/host/app.conf': expected HOST_PATH:GUEST_PATH"));
}

TEST(ParseExtraFile, RejectsRelativeHostPath) {
  EXPECT_THAT(ParseExtraFile("app.conf:/etc/app.conf").status().message(),
              HasSubstr("host path must be absolute"));
}

TEST(ParseExtraFile, RejectsRelativeGuestPath) {
  EXPECT_THAT(ParseExtraFile("/h:etc/app.conf").status().message(),
              HasSubstr("guest path 'etc/app.conf' must be absolute"));
}

TEST(ParseExtraFile, RejectsRootAsGuestPath) {
  EXPECT_THAT(ParseExtraFile("/h:/").status().message(), HasSubstr("not '/'"));
}

TEST(ParseExtraFile, ToStringRoundTrips) {
  EXPECT_EQ(ToString(*ParseExtraFile("/a/b:/c/d")), "/a/b:/c/d");
}

// ---- sizes ----

TEST(ParseSize, PlainNumberIsBytes) { EXPECT_EQ(*ParseSize("1048576"), 1048576u); }
TEST(ParseSize, MegabyteSuffixIsBinary) { EXPECT_EQ(*ParseSize("512M"), 512ull << 20); }
TEST(ParseSize, GigabyteSuffixIsBinary) { EXPECT_EQ(*ParseSize("1G"), 1ull << 30); }
TEST(ParseSize, SuffixIsCaseInsensitive) { EXPECT_EQ(*ParseSize("2g"), 2ull << 30); }
TEST(ParseSize, AcceptsIecSuffix) { EXPECT_EQ(*ParseSize("1GiB"), 1ull << 30); }
TEST(ParseSize, AcceptsKiloAndTera) {
  EXPECT_EQ(*ParseSize("4K"), 4096u);
  EXPECT_EQ(*ParseSize("1T"), 1ull << 40);
}

TEST(ParseSize, RejectsFraction) {
  EXPECT_EQ(ParseSize("1.5G").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseSize, RejectsAmbiguousSiSuffix) {
  EXPECT_THAT(ParseSize("1GB").status().message(), HasSubstr("unknown unit"));
}

TEST(ParseSize, RejectsSign) { EXPECT_FALSE(ParseSize("-1G").ok()); }
TEST(ParseSize, RejectsEmpty) { EXPECT_FALSE(ParseSize("").ok()); }

TEST(ParseSize, RejectsOverflow) {
  EXPECT_THAT(ParseSize("20000000000T").status().message(), HasSubstr("too large"));
}

TEST(FormatSize, UsesLargestExactUnit) {
  EXPECT_EQ(FormatSize(1ull << 30), "1G");
  EXPECT_EQ(FormatSize(1536ull << 20), "1536M");
  EXPECT_EQ(FormatSize(1536), "1536");
}

// ---- volumes ----

TEST(ParseVolume, DefaultsSizeToOneGiB) {
  absl::StatusOr<Volume> v = ParseVolume("data:/var/lib/data");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->name, "data");
  EXPECT_EQ(v->guest_path, "/var/lib/data");
  EXPECT_EQ(v->size_bytes, kDefaultVolumeSizeBytes);
}

TEST(ParseVolume, TakesSizeAfterLastColon) {
  absl::StatusOr<Volume> v = ParseVolume("pg:/var/lib/postgresql:512M");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->guest_path, "/var/lib/postgresql");
  EXPECT_EQ(v->size_bytes, 512ull << 20);
}

TEST(ParseVolume, RejectsHostPathAsName) {
  EXPECT_THAT(ParseVolume("/srv/data:/data").status().message(),
              HasSubstr("not a host path"));
}

TEST(ParseVolume, RejectsBadNameCharacters) {
  EXPECT_THAT(ParseVolume("my data:/data").status().message(),
              HasSubstr("volume name 'my data'"));
}

TEST(ParseVolume, RejectsNameStartingWithDot) {
  EXPECT_FALSE(ParseVolume(".hidden:/data").ok());
}

TEST(ParseVolume, RejectsMountOverRoot) {
  EXPECT_THAT(ParseVolume("data:/").status().message(), HasSubstr("over '/'"));
}

TEST(ParseVolume, RejectsTooSmallSize) {
  EXPECT_THAT(ParseVolume("data:/data:1M").status().message(),
              HasSubstr("size must be between 16M and 16T"));
}

TEST(ParseVolume, RejectsBadSizeNamingTheSpec) {
  EXPECT_THAT(ParseVolume("data:/data:lots").status().message(),
              HasSubstr("volume 'data:/data:lots'"));
}

TEST(ParseVolume, RejectsMissingGuestPath) {
  EXPECT_FALSE(ParseVolume("data").ok());
}

TEST(ParseVolume, ToStringAlwaysCarriesSize) {
  EXPECT_EQ(ToString(*ParseVolume("data:/data")), "data:/data:1G");
}

// ---- restart policy ----

TEST(ParseRestartPolicy, EmptyMeansNo) {
  EXPECT_EQ(ParseRestartPolicy("")->kind, RestartPolicy::Kind::kNo);
}

TEST(ParseRestartPolicy, OnFailureWithoutCountHasNoLimit) {
  absl::StatusOr<RestartPolicy> p = ParseRestartPolicy("on-failure");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, RestartPolicy::Kind::kOnFailure);
  EXPECT_EQ(p->max_retries, 0u);
}

TEST(ParseRestartPolicy, OnFailureTakesRetryCount) {
  EXPECT_EQ(ParseRestartPolicy("on-failure:5")->max_retries, 5u);
}

TEST(ParseRestartPolicy, RejectsZeroRetries) {
  EXPECT_THAT(ParseRestartPolicy("on-failure:0").status().message(),
              HasSubstr("restart policy 'on-failure:0'"));
}

TEST(ParseRestartPolicy, RejectsUnlessStoppedPointingToAlways) {
  EXPECT_THAT(ParseRestartPolicy("unless-stopped").status().message(), HasSubstr("'always'"));
}

TEST(ParseRestartPolicy, RejectsUnknownWord) {
  EXPECT_THAT(ParseRestartPolicy("sometimes").status().message(),
              HasSubstr("expected no, on-failure[:N] or always"));
}

TEST(ParseRestartPolicy, CanonicalFormsRoundTrip) {
  EXPECT_EQ(ToString(*ParseRestartPolicy("on-failure:3")), "on-failure:3");
  EXPECT_EQ(ToString(*ParseRestartPolicy("always")), "always");
  EXPECT_EQ(ToString(*ParseRestartPolicy("")), "no");
}

// ---- health check ----

TEST(ParseHealthCheck, NothingGivenIsNoHealthCheck) {
  absl::StatusOr<std::optional<HealthCheck>> h = ParseHealthCheck("", "");
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
}

TEST(ParseHealthCheck, ShellFormRunsThroughSh) {
  absl::StatusOr<std::optional<HealthCheck>> h = ParseHealthCheck("curl -f localhost", "");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*h)->cmd, (std::vector<std::string>{"/bin/sh", "-c", "curl -f localhost"}));
  EXPECT_EQ((*h)->interval_ms, 30000u);
}

TEST(ParseHealthCheck, JsonFormIsArgv) {
  absl::StatusOr<std::optional<HealthCheck>> h = ParseHealthCheck(R"(["/bin/true"])", "5s");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*h)->cmd, std::vector<std::string>{"/bin/true"});
  EXPECT_EQ((*h)->interval_ms, 5000u);
}

TEST(ParseHealthCheck, PlainIntervalIsSeconds) {
  EXPECT_EQ((*ParseHealthCheck("true", "10"))->interval_ms, 10000u);
}

TEST(ParseHealthCheck, RejectsIntervalWithoutCommand) {
  EXPECT_THAT(ParseHealthCheck("", "10s").status().message(),
              HasSubstr("without a health command"));
}

TEST(ParseHealthCheck, RejectsMalformedJson) {
  EXPECT_THAT(ParseHealthCheck("[\"a\",", "").status().message(),
              HasSubstr("not a JSON array"));
}

TEST(ParseHealthCheck, RejectsTooShortInterval) {
  EXPECT_THAT(ParseHealthCheck("true", "10ms").status().message(),
              HasSubstr("health interval '10ms'"));
}

TEST(ParseDurationMs, UnderstandsUnits) {
  EXPECT_EQ(*ParseDurationMs("d", "250ms"), 250u);
  EXPECT_EQ(*ParseDurationMs("d", "2m"), 120000u);
  EXPECT_EQ(*ParseDurationMs("d", "1h"), 3600000u);
}

TEST(ParseDurationMs, RejectsUnknownUnit) {
  EXPECT_THAT(ParseDurationMs("d", "3d").status().message(), HasSubstr("d '3d'"));
}

// ---- readiness ----

TEST(ParseReadiness, ListenerHasIssueDefaults) {
  absl::StatusOr<Readiness> r = ParseReadiness("listener");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->mode, Readiness::Mode::kListener);
  EXPECT_EQ(r->settle_ms, 50u);
  EXPECT_EQ(r->fallback_ms, 7000u);
  EXPECT_EQ(r->deadline_ms, 240000u);
}

TEST(ParseReadiness, AfterTakesMilliseconds) {
  absl::StatusOr<Readiness> r = ParseReadiness("after=2000");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->mode, Readiness::Mode::kAfter);
  EXPECT_EQ(r->after_ms, 2000u);
}

TEST(ParseReadiness, ListenerTakesOptions) {
  absl::StatusOr<Readiness> r = ParseReadiness("listener,settle=200,fallback=0,deadline=60000");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->settle_ms, 200u);
  EXPECT_EQ(r->fallback_ms, 0u);
  EXPECT_EQ(r->deadline_ms, 60000u);
}

TEST(ParseReadiness, ExitAndParkedAreModes) {
  EXPECT_EQ(ParseReadiness("exit")->mode, Readiness::Mode::kExit);
  EXPECT_EQ(ParseReadiness("parked")->mode, Readiness::Mode::kParked);
}

TEST(ParseReadiness, RejectsSettleOutsideListener) {
  EXPECT_THAT(ParseReadiness("exit,settle=10").status().message(),
              HasSubstr("unknown option 'settle' for exit"));
}

TEST(ParseReadiness, RejectsAfterBeyondDeadline) {
  EXPECT_THAT(ParseReadiness("after=300000").status().message(), HasSubstr("below the deadline"));
}

TEST(ParseReadiness, RejectsAfterWithoutNumber) {
  EXPECT_THAT(ParseReadiness("after=soon").status().message(),
              HasSubstr("readiness 'after=soon'"));
}

TEST(ParseReadiness, RejectsUnknownMode) {
  EXPECT_THAT(ParseReadiness("healthy").status().message(),
              HasSubstr("expected listener, exit, parked or after=<ms>"));
}

TEST(ParseReadiness, RejectsEmpty) { EXPECT_FALSE(ParseReadiness("").ok()); }

TEST(ParseReadiness, RejectsZeroDeadline) {
  EXPECT_THAT(ParseReadiness("parked,deadline=0").status().message(), HasSubstr("deadline"));
}

TEST(ParseReadiness, CanonicalFormRoundTrips) {
  const Readiness r = *ParseReadiness("listener,fallback=100");
  EXPECT_EQ(ToString(r), "listener,settle=50,fallback=100,deadline=240000");
  EXPECT_EQ(*ParseReadiness(ToString(r)), r);
}

// ---- CIDRs and egress ----

TEST(ParseCidr, AcceptsIpv4Prefix) {
  EXPECT_EQ(ToString(*ParseCidr("10.0.0.0/8")), "10.0.0.0/8");
}

TEST(ParseCidr, BareAddressIsHostPrefix) {
  EXPECT_EQ(ToString(*ParseCidr("192.168.1.7")), "192.168.1.7/32");
  EXPECT_EQ(ToString(*ParseCidr("::1")), "::1/128");
}

TEST(ParseCidr, NormalisesIpv6Spelling) {
  EXPECT_EQ(ToString(*ParseCidr("fd00:0::/8")), "fd00::/8");
}

TEST(ParseCidr, RejectsHostBitsSuggestingNetwork) {
  EXPECT_THAT(ParseCidr("10.1.2.3/8").status().message(), HasSubstr("did you mean 10.0.0.0/8?"));
}

TEST(ParseCidr, RejectsLongPrefix) {
  EXPECT_THAT(ParseCidr("10.0.0.0/33").status().message(), HasSubstr("0 to 32"));
}

TEST(ParseCidr, RejectsHostname) {
  EXPECT_THAT(ParseCidr("example.com/24").status().message(),
              HasSubstr("not an IPv4 or IPv6 address"));
}

TEST(ParseEgressPolicy, DefaultIsDenyPrivate) {
  EXPECT_EQ(ParseEgressPolicy("")->kind, EgressPolicy::Kind::kDenyPrivate);
}

TEST(ParseEgressPolicy, AllowAll) {
  EXPECT_EQ(ParseEgressPolicy("allow_all")->kind, EgressPolicy::Kind::kAllowAll);
}

TEST(ParseEgressPolicy, AllowlistKeepsOrderAndDropsDuplicates) {
  absl::StatusOr<EgressPolicy> p =
      ParseEgressPolicy("allowlist:10.0.0.0/8,fd00::/8,10.0.0.0/8");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, EgressPolicy::Kind::kAllowlist);
  EXPECT_EQ(ToString(*p), "allowlist:10.0.0.0/8,fd00::/8");
}

TEST(ParseEgressPolicy, DenylistParses) {
  EXPECT_EQ(ToString(*ParseEgressPolicy("denylist:169.254.169.254")),
            "denylist:169.254.169.254/32");
}

TEST(ParseEgressPolicy, RejectsEmptyList) {
  EXPECT_THAT(ParseEgressPolicy("allowlist:").status().message(), HasSubstr("at least one CIDR"));
}

TEST(ParseEgressPolicy, RejectsBadCidrNamingPolicyAndCidr) {
  absl::Status st = ParseEgressPolicy("denylist:10.0.0.0/8,300.1.1.1").status();
  EXPECT_THAT(st.message(), HasSubstr("egress policy 'denylist:10.0.0.0/8,300.1.1.1'"));
  EXPECT_THAT(st.message(), HasSubstr("CIDR '300.1.1.1'"));
}

TEST(ParseEgressPolicy, RejectsUnknownKind) {
  EXPECT_THAT(ParseEgressPolicy("deny_all").status().message(),
              HasSubstr("expected allow_all, deny_private"));
}

}  // namespace
}  // namespace supermachine::bake
