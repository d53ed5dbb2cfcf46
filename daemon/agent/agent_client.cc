// File: agent_client.cc
// One connection per call: dial, send the Request, run the operation's stream, close.
#include "daemon/agent/agent_client.h"

#include <signal.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/agent/framed_conn.h"
#include "daemon/agent/wire.h"
#include "guest-agent/protocol/frame.h"
#include "proto/agent.pb.h"
#include "worker/base/status_macros.h"

namespace supermachine::agent {
namespace {

// How long past its own timeout we wait for the agent to report DEADLINE_EXCEEDED itself.
constexpr absl::Duration kAgentTimeoutGrace = absl::Seconds(5);
// One WaitForAgent attempt: long enough for an emulated (TCG) guest to answer a ping.
constexpr absl::Duration kPingAttempt = absl::Seconds(5);

const char* ResultName(v1::Response::ResultCase c) {
  switch (c) {
    case v1::Response::kError:
      return "error";
    case v1::Response::kPong:
      return "pong";
    case v1::Response::kExecStarted:
      return "exec_started";
    case v1::Response::kFileWritten:
      return "file_written";
    case v1::Response::kFileInfo:
      return "file_info";
    case v1::Response::kConnected:
      return "connected";
    case v1::Response::kReady:
      return "ready";
    case v1::Response::kWorkloadExit:
      return "workload_exit";
    case v1::Response::kRestored:
      return "restored";
    case v1::Response::kShutdown:
      return "shutdown";
    case v1::Response::RESULT_NOT_SET:
      break;
  }
  return "nothing";
}

// The agent's answer must be `want` or an error (returned as a Status).
absl::Status CheckResponse(const v1::Response& r, v1::Response::ResultCase want,
                           const std::string& context) {
  if (r.result_case() == v1::Response::kError) {
    return AgentErrorToStatus(r.error(), context);
  }
  if (r.result_case() != want) {
    return absl::InternalError(absl::StrCat(context, ": agent answered ", ResultName(r.result_case()),
                                            ", expected ", ResultName(want)));
  }
  return absl::OkStatus();
}

std::string QuoteArgv(const std::vector<std::string>& argv) {
  return absl::StrCat("[", absl::StrJoin(argv, " "), "]");
}

}  // namespace

AgentClient::AgentClient(std::unique_ptr<Dialer> dialer) : dialer_(std::move(dialer)) {}

namespace {

// Dials, names the connection after the operation, sends the request.
absl::StatusOr<std::unique_ptr<FramedConn>> Open(const Dialer& dialer, const v1::Request& request,
                                                 const std::string& op, absl::Time deadline) {
  std::string name = absl::StrCat(dialer.Describe(), ": ", op);
  absl::StatusOr<base::UniqueFd> fd = dialer.Dial(deadline);
  if (!fd.ok()) {
    return base::Annotate(fd.status(), op);
  }
  auto conn = std::make_unique<FramedConn>(std::move(*fd), std::move(name));
  SM_RETURN_IF_ERROR(conn->Write(request, deadline));
  return conn;
}

// Request → one Response of kind `want`.
absl::StatusOr<v1::Response> Call(const Dialer& dialer, const v1::Request& request,
                                  v1::Response::ResultCase want, const std::string& op,
                                  absl::Time deadline) {
  SM_ASSIGN_OR_RETURN(auto conn, Open(dialer, request, op, deadline));
  v1::Response response;
  SM_RETURN_IF_ERROR(conn->Read(&response, deadline));
  SM_RETURN_IF_ERROR(CheckResponse(response, want, conn->name()));
  return response;
}

}  // namespace

absl::StatusOr<PingInfo> AgentClient::Ping(absl::Time deadline) const {
  v1::Request req;
  req.mutable_ping();
  SM_ASSIGN_OR_RETURN(v1::Response r, Call(*dialer_, req, v1::Response::kPong, "ping", deadline));
  return PingFromProto(r.pong());
}

absl::StatusOr<PingInfo> AgentClient::WaitForAgent(absl::Time deadline,
                                                   absl::Duration retry_interval) const {
  const absl::Time start = absl::Now();
  int attempts = 0;
  absl::Status last;
  while (true) {
    ++attempts;
    absl::StatusOr<PingInfo> pong = Ping(std::min(deadline, absl::Now() + kPingAttempt));
    if (pong.ok()) {
      return pong;
    }
    last = pong.status();
    // Only "not there yet" is worth retrying; a bad socket path or a foreign protocol is not.
    if (!absl::IsUnavailable(last) && !absl::IsDeadlineExceeded(last)) {
      return last;
    }
    if (absl::Now() + retry_interval >= deadline) {
      break;
    }
    absl::SleepFor(retry_interval);
  }
  return absl::DeadlineExceededError(absl::StrCat(
      dialer_->Describe(), ": agent did not answer a ping within ",
      absl::FormatDuration(absl::Now() - start), " (", attempts, " attempts); last error: ",
      last.message()));
}

absl::StatusOr<std::unique_ptr<ExecSession>> AgentClient::StartExec(const ExecOptions& options,
                                                                    absl::Time deadline) const {
  if (options.argv.empty()) {
    return absl::InvalidArgumentError("exec: empty argv");
  }
  v1::Request req;
  ExecToProto(options, req.mutable_exec());
  SM_ASSIGN_OR_RETURN(auto conn, Open(*dialer_, req, "exec " + QuoteArgv(options.argv), deadline));
  v1::Response response;
  SM_RETURN_IF_ERROR(conn->Read(&response, deadline));
  SM_RETURN_IF_ERROR(CheckResponse(response, v1::Response::kExecStarted, conn->name()));
  return std::make_unique<ExecSession>(std::move(conn), response.exec_started().pid(),
                                       options.attach_stdin);
}

absl::StatusOr<CommandResult> AgentClient::RunCommand(const ExecOptions& options,
                                                      std::string_view stdin_data,
                                                      absl::Time deadline,
                                                      RunLimits limits) const {
  SM_ASSIGN_OR_RETURN(std::unique_ptr<ExecSession> session, StartExec(options, deadline));
  // stdin is fed on its own thread: a command like `cat` only drains its stdin while we
  // drain its stdout, so one thread doing both in turn could deadlock on full buffers.
  std::thread feeder;
  if (options.attach_stdin) {
    feeder = std::thread([&session, stdin_data, deadline] {
      // Errors are not ours to report: a command may exit without reading its stdin, and
      // then the exit (read below) is the answer.
      if (session->WriteStdin(stdin_data, deadline).ok()) {
        (void)session->CloseStdin(deadline);
      }
    });
  }
  CommandResult result;
  absl::Status status;
  while (true) {
    absl::StatusOr<ExecEvent> ev = session->Read(deadline);
    if (!ev.ok()) {
      status = ev.status();
      if (absl::IsDeadlineExceeded(status)) {
        (void)session->Signal(SIGKILL, absl::Now() + absl::Seconds(1));
      }
      break;
    }
    std::string* out = ev->kind == ExecEvent::Kind::kStderr ? &result.stderr_data : &result.stdout_data;
    bool* truncated =
        ev->kind == ExecEvent::Kind::kStderr ? &result.stderr_truncated : &result.stdout_truncated;
    if (ev->kind == ExecEvent::Kind::kExit) {
      result.exit = ev->exit;
      break;
    }
    size_t room = limits.max_output_bytes - std::min(limits.max_output_bytes, out->size());
    out->append(ev->data, 0, std::min(room, ev->data.size()));
    *truncated = *truncated || ev->data.size() > room;
  }
  // Wakes a feeder still blocked on a stream the agent no longer reads.
  session->Abort();
  if (feeder.joinable()) {
    feeder.join();
  }
  if (!status.ok()) {
    return status;
  }
  return result;
}

absl::StatusOr<uint64_t> AgentClient::WriteFileFrom(const std::string& path,
                                                    const WriteFileOptions& options,
                                                    const Source& source,
                                                    absl::Time deadline) const {
  v1::Request req;
  auto* w = req.mutable_write_file();
  w->set_path(path);
  w->set_mode(options.mode);
  w->set_make_parents(options.make_parents);
  w->set_user(options.user);
  SM_ASSIGN_OR_RETURN(auto conn, Open(*dialer_, req, "write " + path, deadline));
  std::string buf(protocol::kMaxChunkBytes, '\0');
  v1::FileChunk chunk;
  absl::Status sent;
  while (true) {
    absl::StatusOr<size_t> n = source(buf.data(), buf.size());
    if (!n.ok()) {
      return base::Annotate(n.status(), conn->name() + ": reading the source");
    }
    chunk.set_data(buf.data(), *n);
    chunk.set_eof(*n == 0);
    sent = conn->Write(chunk, deadline);
    if (!sent.ok() || *n == 0) {
      break;
    }
  }
  v1::Response response;
  absl::Status got = conn->Read(&response, sent.ok() ? deadline
                                                     : std::min(deadline, absl::Now() + absl::Seconds(1)));
  if (!got.ok()) {
    // The agent may have refused early (an Error, then close) while we were still sending:
    // its answer explains more than our broken pipe, so prefer it when there is one.
    return sent.ok() ? got : sent;
  }
  SM_RETURN_IF_ERROR(CheckResponse(response, v1::Response::kFileWritten, conn->name()));
  return response.file_written().size();
}

absl::StatusOr<uint64_t> AgentClient::WriteFile(const std::string& path, std::string_view data,
                                                const WriteFileOptions& options,
                                                absl::Time deadline) const {
  size_t offset = 0;
  return WriteFileFrom(
      path, options,
      [&](char* buf, size_t size) -> absl::StatusOr<size_t> {
        size_t n = std::min(size, data.size() - offset);
        std::copy_n(data.data() + offset, n, buf);
        offset += n;
        return n;
      },
      deadline);
}

absl::StatusOr<FileInfo> AgentClient::ReadFileTo(const std::string& path, uint64_t max_bytes,
                                                 const Sink& sink, absl::Time deadline) const {
  v1::Request req;
  req.mutable_read_file()->set_path(path);
  req.mutable_read_file()->set_max_bytes(max_bytes);
  SM_ASSIGN_OR_RETURN(auto conn, Open(*dialer_, req, "read " + path, deadline));
  v1::Response response;
  SM_RETURN_IF_ERROR(conn->Read(&response, deadline));
  SM_RETURN_IF_ERROR(CheckResponse(response, v1::Response::kFileInfo, conn->name()));
  FileInfo info = FileInfoFromProto(response.file_info());
  uint64_t received = 0;
  v1::FileChunk chunk;
  while (true) {
    SM_RETURN_IF_ERROR(conn->Read(&chunk, deadline));
    received += chunk.data().size();
    if (max_bytes != 0 && received > max_bytes) {
      return absl::DataLossError(absl::StrCat(conn->name(), ": agent sent more than the ",
                                              max_bytes, "-byte limit"));
    }
    if (!chunk.data().empty()) {
      SM_RETURN_IF_ERROR(sink(chunk.data()));
    }
    if (chunk.eof()) {
      break;
    }
  }
  return info;
}

absl::StatusOr<std::string> AgentClient::ReadFile(const std::string& path, uint64_t max_bytes,
                                                  absl::Time deadline) const {
  std::string data;
  SM_RETURN_IF_ERROR(ReadFileTo(
                         path, max_bytes,
                         [&](std::string_view chunk) {
                           data.append(chunk);
                           return absl::OkStatus();
                         },
                         deadline)
                         .status());
  return data;
}

absl::StatusOr<FileInfo> AgentClient::Stat(const std::string& path, absl::Time deadline) const {
  v1::Request req;
  req.mutable_stat()->set_path(path);
  SM_ASSIGN_OR_RETURN(v1::Response r,
                      Call(*dialer_, req, v1::Response::kFileInfo, "stat " + path, deadline));
  return FileInfoFromProto(r.file_info());
}

absl::StatusOr<base::UniqueFd> AgentClient::Connect(uint32_t port, absl::Time deadline,
                                                    const std::string& address) const {
  v1::Request req;
  req.mutable_connect()->set_port(port);
  req.mutable_connect()->set_address(address);
  SM_ASSIGN_OR_RETURN(auto conn, Open(*dialer_, req, absl::StrCat("connect guest port ", port),
                                      deadline));
  v1::Response response;
  // Raw bytes follow the reply at once (a server may speak first): read not one byte more.
  SM_RETURN_IF_ERROR(conn->ReadExact(&response, deadline));
  SM_RETURN_IF_ERROR(CheckResponse(response, v1::Response::kConnected, conn->name()));
  return conn->Release();
}

absl::StatusOr<absl::Duration> AgentClient::WaitReady(const ReadyCondition& condition,
                                                      absl::Time deadline) const {
  v1::Request req;
  auto* w = req.mutable_wait_ready();
  ReadyToProto(condition, w);
  absl::Time local_deadline = deadline;
  if (deadline != absl::InfiniteFuture()) {
    // The agent enforces the timeout and says so; our own deadline is a backstop after it.
    absl::Duration left = std::max(deadline - absl::Now(), absl::Milliseconds(1));
    w->set_timeout_ms(static_cast<uint32_t>(
        std::min<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))),
                          UINT32_MAX)));
    local_deadline = deadline + kAgentTimeoutGrace;
  }
  std::string op = "wait-ready";
  switch (condition.kind) {
    case ReadyCondition::Kind::kListenerPort:
      op = absl::StrCat("wait for a listener on guest port ", condition.port);
      break;
    case ReadyCondition::Kind::kWorkloadExited:
      op = "wait for the workload to exit";
      break;
    case ReadyCondition::Kind::kIdle:
      op = absl::StrCat("wait for ", absl::FormatDuration(condition.idle), " idle");
      break;
    case ReadyCondition::Kind::kParked:
      op = "wait for the workload to be parked";
      break;
  }
  SM_ASSIGN_OR_RETURN(v1::Response r, Call(*dialer_, req, v1::Response::kReady, op, local_deadline));
  return absl::Microseconds(static_cast<int64_t>(r.ready().waited_us()));
}

absl::StatusOr<WorkloadExitInfo> AgentClient::WaitExit(absl::Time deadline) const {
  v1::Request req;
  req.mutable_wait_exit();
  SM_ASSIGN_OR_RETURN(v1::Response r, Call(*dialer_, req, v1::Response::kWorkloadExit,
                                           "wait for the workload exit", deadline));
  return WorkloadExitInfo{.status = ExitFromProto(r.workload_exit().status()),
                          .restarts = r.workload_exit().restarts()};
}

absl::StatusOr<uint64_t> AgentClient::Restored(const RestoreInfo& info, absl::Time deadline) const {
  v1::Request req;
  RestoreToProto(info, req.mutable_restored());
  SM_ASSIGN_OR_RETURN(v1::Response r,
                      Call(*dialer_, req, v1::Response::kRestored,
                           absl::StrCat("restored (generation ", info.generation, ")"), deadline));
  return r.restored().generation();
}

absl::Status AgentClient::Shutdown(absl::Time deadline) const {
  v1::Request req;
  req.mutable_shutdown();
  return Call(*dialer_, req, v1::Response::kShutdown, "shutdown", deadline).status();
}

}  // namespace supermachine::agent
