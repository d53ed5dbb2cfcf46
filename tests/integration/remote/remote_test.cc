// File: remote_test.cc
// The real supermachined with --tcp: TLS with a certificate made at test time, a bearer token
// on every call, optional mTLS; and the refusals to start without them. Clients are gRPC's
// own TLS credentials (+ AccessTokenCredentials, which sends "authorization: Bearer ...").
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/supermachine.grpc.pb.h"
#include "tests/integration/daemon/daemon_process.h"
#include "tests/integration/remote/test_pki.h"

namespace supermachine::test_support {
namespace {

using ::testing::HasSubstr;

struct ClientSetup {
  std::string token;       // "" sends none
  bool client_cert = false;
  bool rogue_cert = false;  // a client certificate from a CA the daemon does not trust
};

std::shared_ptr<grpc::Channel> TlsChannel(int port, const TestPki& pki, const ClientSetup& c) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = pki.ca_cert;
  if (c.client_cert) {
    o.pem_cert_chain = pki.client_cert;
    o.pem_private_key = pki.client_key;
  } else if (c.rogue_cert) {
    o.pem_cert_chain = pki.rogue_cert;
    o.pem_private_key = pki.rogue_key;
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(o);
  if (!c.token.empty()) {
    creds = grpc::CompositeChannelCredentials(creds, grpc::AccessTokenCredentials(c.token));
  }
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port), creds);
}

grpc::Status Health(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::Supermachine::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::HealthRequest req;
  v1::HealthResponse resp;
  return stub->Health(&ctx, req, &resp);
}

int RemotePort(const DaemonProcess& d) {
  static const std::regex kRemote(R"(msg="remote listening".* port=(\d+))");
  std::smatch m;
  std::string text = d.Stderr();
  return std::regex_search(text, m, kRemote) ? std::stoi(m[1].str()) : -1;
}

class Remote : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TestPki> pki = TestPki::Create(dir_.path());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
  }

  // The daemon with --tcp on an ephemeral loopback port; `port_` is the one it bound.
  void StartDaemon(bool mutual_tls) {
    std::vector<std::string> args = {"--tcp",     "127.0.0.1:0",       "--tls-cert",
                                     dir_.File("server.pem"), "--tls-key", dir_.File("server.key"),
                                     "--token-file", pki_.token_file};
    if (mutual_tls) {
      args.insert(args.end(), {"--tls-client-ca", dir_.File("ca.pem")});
    }
    absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(dir_.path(), args);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_.emplace(std::move(*d));
    port_ = RemotePort(*daemon_);
    ASSERT_GT(port_, 0) << daemon_->Stderr();
    EXPECT_THAT(daemon_->Stderr(), HasSubstr(mutual_tls ? "mtls=required" : "mtls=off"));
  }

  ScratchDir dir_;
  TestPki pki_;
  std::optional<DaemonProcess> daemon_;
  int port_ = -1;
};

TEST_F(Remote, RightTokenOverTlsIsServed) {
  StartDaemon(false);
  grpc::Status st = Health(TlsChannel(port_, pki_, {.token = pki_.token}));
  EXPECT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
}

TEST_F(Remote, MissingTokenIsUnauthenticated) {
  StartDaemon(false);
  grpc::Status st = Health(TlsChannel(port_, pki_, {}));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("missing bearer token"));
  EXPECT_THAT(daemon_->Stderr(), HasSubstr("remote call refused"));
}

TEST_F(Remote, WrongTokenIsUnauthenticated) {
  StartDaemon(false);
  grpc::Status st = Health(TlsChannel(port_, pki_, {.token = "sm-test-token-wrong-0000000000000"}));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("invalid bearer token"));
  EXPECT_THAT(daemon_->Stderr(), ::testing::Not(HasSubstr(pki_.token)));
}

TEST_F(Remote, PlaintextClientGetsNoService) {
  StartDaemon(false);
  grpc::Status st = Health(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                               grpc::InsecureChannelCredentials()));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
}

TEST_F(Remote, UnixSocketNeedsNoTokenWhileTcpIsOn) {
  StartDaemon(false);
  grpc::Status st = Health(
      grpc::CreateChannel("unix:" + daemon_->socket(), grpc::InsecureChannelCredentials()));
  EXPECT_TRUE(st.ok()) << st.error_message();
}

TEST_F(Remote, MutualTlsRefusesAClientWithoutACertificate) {
  StartDaemon(true);
  grpc::Status st = Health(TlsChannel(port_, pki_, {.token = pki_.token}));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
}

TEST_F(Remote, MutualTlsRefusesACertificateFromAnotherCa) {
  StartDaemon(true);
  grpc::Status st = Health(TlsChannel(port_, pki_, {.token = pki_.token, .rogue_cert = true}));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
}

TEST_F(Remote, MutualTlsServesATrustedCertificateWithTheToken) {
  StartDaemon(true);
  grpc::Status st = Health(TlsChannel(port_, pki_, {.token = pki_.token, .client_cert = true}));
  EXPECT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
}

TEST_F(Remote, MutualTlsStillNeedsTheToken) {
  StartDaemon(true);
  grpc::Status st = Health(TlsChannel(port_, pki_, {.client_cert = true}));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
}

// smctl as a remote client: --host with the daemon's CA and the token file.
TEST_F(Remote, SmctlReachesTheDaemonWithHostCaAndToken) {
  StartDaemon(false);
  const std::string host = "127.0.0.1:" + std::to_string(port_);
  absl::StatusOr<CommandResult> ok =
      RunCommand({SM_SMCTL_PATH, "--host", host, "--tls-ca", dir_.File("ca.pem"), "--token-file",
                  pki_.token_file, "version"},
                 dir_.path());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->exit.success()) << ok->exit.ToString() << ": " << ok->err;

  const std::string wrong_token = dir_.File("wrong-token");
  std::ofstream(wrong_token) << "sm-test-token-wrong-0000000000000\n";
  absl::StatusOr<CommandResult> refused =
      RunCommand({SM_SMCTL_PATH, "--host", host, "--tls-ca", dir_.File("ca.pem"), "--token-file",
                  wrong_token, "version"},
                 dir_.path());
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->exit.code, 4) << refused->err;  // kExitPermission
  EXPECT_THAT(refused->err, HasSubstr("invalid bearer token"));

  absl::StatusOr<CommandResult> no_token = RunCommand(
      {SM_SMCTL_PATH, "--host", host, "--tls-ca", dir_.File("ca.pem"), "version"}, dir_.path());
  ASSERT_TRUE(no_token.ok()) << no_token.status();
  EXPECT_FALSE(no_token->exit.success());
  EXPECT_THAT(no_token->err, HasSubstr("--token-file"));
}

// Refusals: each exits before serving, says what is missing, and leaves no socket.
class RemoteRefusal : public Remote {
 protected:
  CommandResult RunDaemon(const std::vector<std::string>& remote_args) {
    std::vector<std::string> args = {"--socket", dir_.File("sm.sock"), "--state-dir",
                                     dir_.File("state"), "--metrics-address", "127.0.0.1:0"};
    args.insert(args.end(), remote_args.begin(), remote_args.end());
    absl::StatusOr<CommandResult> r = RunDaemonToExit(args, dir_.path());
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(std::filesystem::exists(dir_.File("sm.sock")));
    return r.ok() ? *r : CommandResult{};
  }
};

TEST_F(RemoteRefusal, TcpWithoutTls) {
  CommandResult r = RunDaemon({"--tcp", "127.0.0.1:0", "--token-file", pki_.token_file});
  EXPECT_EQ(r.exit.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--tcp requires TLS"));
}

TEST_F(RemoteRefusal, TcpWithoutToken) {
  CommandResult r = RunDaemon({"--tcp", "127.0.0.1:0", "--tls-cert", dir_.File("server.pem"),
                               "--tls-key", dir_.File("server.key")});
  EXPECT_EQ(r.exit.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--tcp requires --token-file"));
}

TEST_F(RemoteRefusal, WorldReadableToken) {
  ASSERT_EQ(::chmod(pki_.token_file.c_str(), 0644), 0);
  CommandResult r = RunDaemon({"--tcp", "127.0.0.1:0", "--tls-cert", dir_.File("server.pem"),
                               "--tls-key", dir_.File("server.key"), "--token-file",
                               pki_.token_file});
  EXPECT_EQ(r.exit.code, 1);
  EXPECT_THAT(r.err, HasSubstr("readable by every user"));
}

TEST_F(RemoteRefusal, KeyThatDoesNotMatchTheCertificate) {
  CommandResult r = RunDaemon({"--tcp", "127.0.0.1:0", "--tls-cert", dir_.File("server.pem"),
                               "--tls-key", dir_.File("client.key"), "--token-file",
                               pki_.token_file});
  EXPECT_EQ(r.exit.code, 1);
  EXPECT_THAT(r.err, HasSubstr("does not match the certificate"));
}

TEST_F(RemoteRefusal, TakenPortIsNamed) {
  StartDaemon(false);
  absl::StatusOr<CommandResult> r = RunDaemonToExit(
      {"--socket", dir_.File("b.sock"), "--state-dir", dir_.File("state2"), "--metrics-address",
       "127.0.0.1:0", "--tcp", "127.0.0.1:" + std::to_string(port_), "--tls-cert",
       dir_.File("server.pem"), "--tls-key", dir_.File("server.key"), "--token-file",
       pki_.token_file},
      dir_.path());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit.code, 1);
  EXPECT_THAT(r->err, HasSubstr("cannot listen on --tcp 127.0.0.1:" + std::to_string(port_)));
}

}  // namespace
}  // namespace supermachine::test_support
