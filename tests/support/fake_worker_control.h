// File: fake_worker_control.h
// Test support: a stand-in for a worker's control socket (`supermachine-worker --control`)
// for tests of the daemon's clients of it (worker_control.h, vm_net_stats.h). It takes one
// connection, reads the first line, sends `reply` exactly as given (newline or not; "" sends
// nothing), then closes the connection, or with kHold keeps it open and silent until the fake
// is destroyed (a worker that never answers).
#pragma once

#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "worker/base/unique_fd.h"

namespace supermachine::test_support {

class FakeWorkerControl {
 public:
  enum class Then { kClose, kHold };

  FakeWorkerControl(std::string path, std::string reply, Then then = Then::kClose);
  ~FakeWorkerControl();
  FakeWorkerControl(const FakeWorkerControl&) = delete;
  FakeWorkerControl& operator=(const FakeWorkerControl&) = delete;

  // What the client sent, up to and including its first newline (waits for it).
  std::string got();

 private:
  std::string path_;
  base::UniqueFd fd_;
  std::thread thread_;
  std::string got_;
  absl::Notification got_line_;
  absl::Notification test_over_;
};

}  // namespace supermachine::test_support
