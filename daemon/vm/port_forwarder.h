// File: port_forwarder.h
// PortForwarder: one host TCP listener whose every accepted connection is spliced to a new
// connection to a guest port through the agent's Connect operation (raw bytes both ways).
// One accept thread (poll on the listener and a stop pipe) and one thread per connection
// (poll on both ends); destroying the forwarder closes the listener and every connection and
// joins all threads. Binding errors name the port: "host port 8080 is already in use".
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "worker/base/unique_fd.h"

namespace supermachine::vm {

class PortForwarder {
 public:
  // Opens a stream to the guest port (AgentClient::Connect in the daemon).
  using Connector = std::function<absl::StatusOr<base::UniqueFd>(absl::Time deadline)>;

  // Binds `address`:`host_port` (0: ephemeral) and starts accepting.
  static absl::StatusOr<std::unique_ptr<PortForwarder>> Start(const std::string& address,
                                                              uint16_t host_port,
                                                              Connector connector);
  ~PortForwarder();
  PortForwarder(const PortForwarder&) = delete;
  PortForwarder& operator=(const PortForwarder&) = delete;

  uint16_t port() const { return port_; }
  const std::string& address() const { return address_; }

 private:
  struct Conn {
    base::UniqueFd client;
    std::thread thread;
    std::atomic<bool> done{false};  // Splice returned: the thread can be joined at once
  };
  PortForwarder(std::string address, uint16_t port, base::UniqueFd listener, base::UniqueFd stop_r,
                base::UniqueFd stop_w, Connector connector);
  void AcceptLoop();
  void Splice(int client_fd);
  // Joins and drops connections whose splice ended (so a long-lived VM does not accumulate
  // finished threads). Caller holds mu_.
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::string address_;
  uint16_t port_;
  base::UniqueFd listener_;
  base::UniqueFd stop_r_;
  base::UniqueFd stop_w_;
  Connector connector_;
  absl::Mutex mu_;
  std::list<Conn> conns_ ABSL_GUARDED_BY(mu_);
  std::thread accept_;
};

}  // namespace supermachine::vm
