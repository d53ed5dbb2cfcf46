// File: exec_bridge.cc
// Exec: bridges the client's bidi stream to a guest exec session (daemon/agent/exec_session.h).
// The handler thread moves output (session → client); a second thread moves input (client →
// session: stdin, EOF, resize, signal). Backpressure, not buffering: a client that stops
// reading blocks our Write (gRPC flow control), which stops our reads from the agent, whose
// reads stop the guest's pipe, so no buffer grows and nothing is dropped. The client ends its
// side once it got the exit (smctl does); one that does not is cancelled after kInputGrace.
// The command's deadline is ExecStart.timeout_ms, enforced in the guest; none means none.
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "daemon/agent/agent_client.h"
#include "daemon/api/service.h"
#include "worker/base/status_macros.h"

namespace supermachine::api {
namespace {

// Bound on starting the command (dial, request, ExecStarted), not on running it.
constexpr absl::Duration kStartTimeout = absl::Seconds(30);
// After the exit was sent, how long the client gets to close its side before we cancel.
constexpr absl::Duration kInputGrace = absl::Seconds(2);

using ExecStream = grpc::ServerReaderWriter<v1::ExecResponse, v1::ExecRequest>;

// Client → session until the client closes its side (or the call is cancelled).
void PumpInput(ExecStream* stream, agent::ExecSession* session, absl::Notification* done) {
  v1::ExecRequest msg;
  bool stdin_open = true;
  while (stream->Read(&msg)) {
    absl::Status st;
    switch (msg.msg_case()) {
      case v1::ExecRequest::kStdin:
        if (stdin_open) {
          st = session->WriteStdin(msg.stdin(), absl::InfiniteFuture());
        }
        break;
      case v1::ExecRequest::kStdinEof:
        if (stdin_open) {
          stdin_open = false;
          st = session->CloseStdin(absl::Now() + kStartTimeout);
        }
        break;
      case v1::ExecRequest::kResize:
        st = session->Resize({.rows = msg.resize().rows(), .cols = msg.resize().cols()},
                             absl::Now() + kStartTimeout);
        break;
      case v1::ExecRequest::kSignal:
        st = session->Signal(msg.signal(), absl::Now() + kStartTimeout);
        break;
      default:
        break;  // a second start is ignored
    }
    (void)st;  // A failed write means the command or agent is gone; the output side reports it.
  }
  if (stdin_open) {
    (void)session->CloseStdin(absl::Now() + kStartTimeout);
  }
  done->Notify();
}

}  // namespace

absl::Status SupermachineService::DoExec(grpc::ServerContext* ctx, ExecStream* stream) {
  v1::ExecRequest first;
  if (!stream->Read(&first)) {
    return absl::InvalidArgumentError("exec stream ended before its start message");
  }
  if (!first.has_start()) {
    return absl::InvalidArgumentError("the first exec message must be `start`");
  }
  const v1::ExecStart& start = first.start();
  if (start.argv().empty() || start.argv(0).empty()) {
    return absl::InvalidArgumentError("exec needs a command (argv is empty)");
  }
  SM_ASSIGN_OR_RETURN(vm::VmView view, FindVm(start.vm_id()));
  agent::ExecOptions options{
      .argv = {start.argv().begin(), start.argv().end()},
      .env = {start.env().begin(), start.env().end()},
      .cwd = start.cwd(),
      .user = start.user(),
      .tty = start.tty(),
      .timeout = absl::Milliseconds(start.timeout_ms()),
      .attach_stdin = true,
  };
  if (start.rows() != 0 && start.cols() != 0) {
    options.window = {.rows = start.rows(), .cols = start.cols()};
  }
  // An exec is activity: an idle-inflated balloon is deflated before the command starts, and
  // the VM does not count as idle while it runs (docs/balloon.md "Daemon policy").
  const vm::IdleBalloon::Activity activity = options_.vms->BeginActivity(view.id);
  const absl::Time started = absl::Now();
  SM_ASSIGN_OR_RETURN(std::unique_ptr<agent::ExecSession> session,
                      view.vm->agent()->StartExec(options, absl::Now() + kStartTimeout));

  absl::Notification input_done;
  std::thread input(PumpInput, stream, session.get(), &input_done);
  absl::Status result;
  bool exited = false;
  while (true) {
    absl::StatusOr<agent::ExecEvent> ev = session->Read(absl::InfiniteFuture());
    if (!ev.ok()) {
      result = ctx->IsCancelled()
                   ? absl::CancelledError("exec cancelled by the client")
                   : base::Annotate(ev.status(), absl::StrCat("exec in VM ", view.id));
      break;
    }
    v1::ExecResponse out;
    if (ev->kind == agent::ExecEvent::Kind::kStdout) {
      out.set_stdout(std::move(ev->data));
    } else if (ev->kind == agent::ExecEvent::Kind::kStderr) {
      out.set_stderr(std::move(ev->data));
    } else {
      v1::ExecExit* e = out.mutable_exit();
      e->set_exit_code(ev->exit.signaled ? 0 : ev->exit.code);
      e->set_signal(ev->exit.signaled ? ev->exit.signal : 0);
      e->set_timed_out(ev->exit.timed_out);
      e->set_duration_ms(static_cast<uint64_t>(absl::ToInt64Milliseconds(absl::Now() - started)));
      exited = true;
    }
    if (!stream->Write(out)) {
      result = absl::CancelledError("the exec client went away");
      break;
    }
    if (exited) {
      break;
    }
  }
  if (!exited) {
    session->Abort();  // the agent kills the command's group
  }
  if (!input_done.WaitForNotificationWithTimeout(kInputGrace)) {
    ctx->TryCancel();  // unblocks the input thread's Read
  }
  input.join();
  return result;
}

}  // namespace supermachine::api
