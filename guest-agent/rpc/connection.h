// File: guest-agent/rpc/connection.h
// What every per-connection handler shares (internal to rpc/): the server-wide context, the
// Error reply, errno → status code mapping, and the graceful close. One handler per operation,
// each in its own file (exec.cc, files.cc, connect.cc, readiness.cc, restore_hook.cc).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "guest-agent/process/reaper.h"
#include "guest-agent/workload/workload_view.h"
#include "proto/agent.pb.h"

namespace supermachine::agent::rpc {

class System;

// Error.code values (absl::StatusCode / google.rpc.Code).
enum Code : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
};

// The most specific code for an errno.
int ErrnoToCode(int err);
// "<what>: <strerror(err)>".
std::string ErrnoMessage(const std::string& what, int err);

// Server-wide state a handler may use; outlives every connection.
struct ServerContext {
  WorkloadView* workload = nullptr;
  Reaper* reaper = nullptr;
  System* system = nullptr;
  std::string agent_version;
  std::string root_dir = "/";
  std::atomic<uint64_t> generation{0};
};

struct Connection {
  int fd = -1;  // Blocking unless a handler switches it (exec, connect); closed by the server.
  ServerContext* ctx = nullptr;
};

// Sends Response{error}. Returns false when the peer is gone (nothing else to do then).
bool SendError(const Connection& conn, int code, const std::string& message);
bool SendResponse(const Connection& conn, const v1::Response& response);

// Half-closes our side and waits (bounded) for the peer to close, so the last frame is not
// lost to a reset when unread input is still queued on our side.
void FinishConnection(const Connection& conn);

// Whole contents of a small file (procfs, /etc), opened O_CLOEXEC so a concurrent exec's
// fork cannot inherit it (std::ifstream's fopen is not close-on-exec). Empty if unreadable.
std::string ReadSmallFile(const char* path);

// True when the peer has hung up completely (POLLHUP/POLLERR) within `timeout_ms`; input that
// arrives meanwhile is left unread. Used by handlers that wait on something else.
bool PeerGone(int fd, int timeout_ms);

// Handlers: each reads the rest of its stream from conn.fd and answers. The request frame has
// been read already.
void HandlePing(const Connection& conn);
void HandleExec(const Connection& conn, const v1::ExecRequest& request);
void HandleWriteFile(const Connection& conn, const v1::WriteFileRequest& request);
void HandleReadFile(const Connection& conn, const v1::ReadFileRequest& request);
void HandleStat(const Connection& conn, const v1::StatRequest& request);
void HandleConnect(const Connection& conn, const v1::ConnectRequest& request);
void HandleWaitReady(const Connection& conn, const v1::WaitReadyRequest& request);
void HandleWaitExit(const Connection& conn);
void HandleRestored(const Connection& conn, const v1::RestoredRequest& request);

using Clock = std::chrono::steady_clock;

}  // namespace supermachine::agent::rpc
