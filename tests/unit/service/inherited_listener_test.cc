// File: inherited_listener_test.cc
// A gRPC server with no port of its own serves a listening Unix socket handed to
// InheritedListener, as after systemd socket activation; once the listener is gone, new
// connections are refused.
#include "daemon/service/inherited_listener.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/grpc_health.h"
#include "tests/support/temp_dir.h"

namespace supermachine::service {
namespace {

using base::UniqueFd;

UniqueFd ListenUnix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::listen(fd.get(), 16), 0);
  return fd;
}

grpc::Status HealthCheck(const std::string& path) {
  return test_support::CallHealthCheck(path, std::chrono::seconds(20));
}

TEST(InheritedListener, ServesGrpcOnThePassedSocketUntilDestroyed) {
  test_support::TempDir dir;
  const std::string path = dir.Join("api.sock");
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;  // no AddListeningPort: the socket comes from outside
  // gRPC starts no server without a polled queue; any callback service (as the daemon's) makes
  // one. This one answers nothing: the health service is the one called.
  grpc::CallbackGenericService unused;
  builder.RegisterCallbackGenericService(&unused);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  absl::StatusOr<std::unique_ptr<InheritedListener>> listener =
      InheritedListener::Start(ListenUnix(path), server.get(), nullptr);
  ASSERT_TRUE(listener.ok()) << listener.status();
  grpc::Status first = HealthCheck(path);
  EXPECT_TRUE(first.ok()) << first.error_message();
  grpc::Status second = HealthCheck(path);
  EXPECT_TRUE(second.ok()) << second.error_message();
  EXPECT_EQ((*listener)->accepted(), 2u);

  listener->reset();  // closes the listening socket
  grpc::Status after = HealthCheck(path);
  EXPECT_EQ(after.error_code(), grpc::StatusCode::UNAVAILABLE) << after.error_message();
  server->Shutdown();
}

}  // namespace
}  // namespace supermachine::service
