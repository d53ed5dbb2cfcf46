// File: exec_session.cc
// ExecInput frames out, ExecOutput frames in.
#include "daemon/agent/exec_session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/agent/wire.h"
#include "guest-agent/protocol/frame.h"
#include "proto/agent.pb.h"
#include "worker/base/status_macros.h"

namespace supermachine::agent {

ExecSession::ExecSession(std::unique_ptr<FramedConn> conn, int pid, bool stdin_open)
    : conn_(std::move(conn)), pid_(pid), stdin_open_(stdin_open) {}

absl::Status ExecSession::SendLocked(const v1::ExecInput& input, absl::Time deadline) {
  return conn_->Write(input, deadline);
}

absl::Status ExecSession::WriteStdin(std::string_view data, absl::Time deadline) {
  absl::MutexLock lock(&write_mu_);
  if (!stdin_open_) {
    return absl::FailedPreconditionError(absl::StrCat(
        conn_->name(), ": exec pid ", pid_, ": stdin is closed (or was not requested)"));
  }
  v1::ExecInput input;
  while (!data.empty()) {
    size_t n = std::min(data.size(), protocol::kMaxChunkBytes);
    input.set_stdin(data.data(), n);
    SM_RETURN_IF_ERROR(SendLocked(input, deadline));
    data.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::Status ExecSession::CloseStdin(absl::Time deadline) {
  absl::MutexLock lock(&write_mu_);
  if (!stdin_open_) {
    return absl::OkStatus();
  }
  stdin_open_ = false;
  v1::ExecInput input;
  input.set_stdin_eof(true);
  return SendLocked(input, deadline);
}

absl::Status ExecSession::Resize(WindowSize size, absl::Time deadline) {
  absl::MutexLock lock(&write_mu_);
  v1::ExecInput input;
  input.mutable_resize()->set_rows(size.rows);
  input.mutable_resize()->set_cols(size.cols);
  return SendLocked(input, deadline);
}

absl::Status ExecSession::Signal(int signal, absl::Time deadline) {
  absl::MutexLock lock(&write_mu_);
  v1::ExecInput input;
  input.set_signal(signal);
  return SendLocked(input, deadline);
}

absl::StatusOr<ExecEvent> ExecSession::Read(absl::Time deadline) {
  if (finished_) {
    return absl::FailedPreconditionError(
        absl::StrCat(conn_->name(), ": exec pid ", pid_, ": already exited"));
  }
  v1::ExecOutput out;
  absl::Status st = conn_->Read(&out, deadline);
  if (!st.ok()) {
    return base::Annotate(st, absl::StrCat("exec pid ", pid_, " ended without an exit status"));
  }
  ExecEvent ev;
  switch (out.output_case()) {
    case v1::ExecOutput::kStdout:
      ev.kind = ExecEvent::Kind::kStdout;
      ev.data = std::move(*out.mutable_stdout());
      return ev;
    case v1::ExecOutput::kStderr:
      ev.kind = ExecEvent::Kind::kStderr;
      ev.data = std::move(*out.mutable_stderr());
      return ev;
    case v1::ExecOutput::kExit:
      ev.kind = ExecEvent::Kind::kExit;
      ev.exit = ExitFromProto(out.exit());
      finished_ = true;
      return ev;
    case v1::ExecOutput::OUTPUT_NOT_SET:
      break;
  }
  return absl::DataLossError(
      absl::StrCat(conn_->name(), ": exec pid ", pid_, ": agent sent an empty ExecOutput"));
}

}  // namespace supermachine::agent
