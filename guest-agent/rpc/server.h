// File: guest-agent/rpc/server.h
// The guest agent's RPC server for proto/agent.proto (docs/agent-protocol.md): accepts host
// connections on a listening socket (vsock in the guest, any stream socket in host tests) and
// serves one operation per connection on its own thread.
#pragma once

#include <cstdint>
#include <string>

#include "guest-agent/process/reaper.h"
#include "guest-agent/workload/workload_view.h"

namespace supermachine::agent::rpc {

class System;  // restore_hook.h: the privileged syscalls of `restored`.

struct ServerOptions {
  int listen_fd = -1;            // A listening SOCK_STREAM socket; the caller keeps ownership.
  WorkloadView* workload = nullptr;
  Reaper* reaper = nullptr;      // Every exec'd child is spawned through it.
  std::string agent_version;     // Reported in Pong.
  // Seams for host tests; the defaults are the guest's.
  System* system = nullptr;      // null: the real syscalls (RealSystem()).
  std::string root_dir = "/";    // Where /etc/{passwd,group,hostname,machine-id} and
                                 // /run/supermachine live.
};

// vsock listener on VMADDR_CID_ANY:port (SOCK_CLOEXEC); returns the fd or -errno.
int ListenVsock(uint32_t port);

class Server {
 public:
  explicit Server(ServerOptions o);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Accept loop, one thread per connection. Returns after Stop(), once every connection thread
  // has finished (Stop() shuts their sockets down, which ends each operation; a running exec's
  // process group is killed).
  void Run();
  // Thread-safe, idempotent; may be called before Run().
  void Stop();

 private:
  struct State;
  State* state_;  // Owned; opaque so this header stays free of the per-connection machinery.
};

}  // namespace supermachine::agent::rpc
