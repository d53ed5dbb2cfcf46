// File: guest-agent/rpc/exec.cc
// The `exec` operation: starts a command in the guest (argv via PATH, merged env, cwd, user,
// pipes or a pty), then runs one poll loop that moves bytes both ways with backpressure:
//   - stdout/stderr are read only while fewer than kMaxOutboundBytes wait for the host, so a
//     host that stops reading stalls the command (its pipe fills), never our memory;
//   - host frames are read only while fewer than kMaxPendingStdin bytes wait for the command's
//     stdin, so a command that does not read stalls the host's writes the same way.
// Resize and signal frames take effect when read. The timeout and the end of the host
// connection SIGKILL the process group. The command's exit arrives from the Reaper on a small
// waiter thread (eventfd), so the loop never calls wait*.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "guest-agent/protocol/frame.h"
#include "guest-agent/rpc/connection.h"
#include "guest-agent/rpc/exec_start.h"

namespace supermachine::agent::rpc {
namespace {

constexpr size_t kReadChunk = size_t{64} * 1024;
constexpr size_t kMaxOutboundBytes = size_t{256} * 1024;  // Serialized frames for the host.
constexpr size_t kMaxPendingStdin = size_t{2} << 20;      // Bytes for the command's stdin.
// After the command exits, output still in flight (pipe buffers, descendants holding the
// pipes) is forwarded until both streams end or nothing moved for this long.
constexpr auto kDrainGrace = std::chrono::milliseconds(500);

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

class ExecLoop {
 public:
  ExecLoop(const Connection& conn, const v1::ExecRequest& request, StartedCommand started)
      : conn_(conn), request_(request), s_(std::move(started)) {}

  void Run();

 private:
  bool QueueOutput(const v1::ExecOutput& out);
  bool ReadHost();
  bool HandleInput(const v1::ExecInput& input);
  void ReadStream(Fd* fd, bool is_stderr, bool* eof);
  bool FlushOutbound();
  void FlushStdin();
  void CloseStdin();
  void KillGroup();

  const Connection& conn_;
  const v1::ExecRequest& request_;
  StartedCommand s_;
  protocol::FrameDecoder decoder_;
  std::string outbound_;       // Serialized frames for the host.
  size_t outbound_offset_ = 0;
  std::string stdin_pending_;  // Bytes for the command's stdin.
  bool stdin_eof_requested_ = false;
  bool host_input_done_ = false;  // Host half-closed (or sent garbage): no more input.
  bool host_gone_ = false;
  bool killed_ = false;
  bool exited_ = false;  // Reaped: its pid may be reused, only its group id is still safe.
  bool timed_out_ = false;
  bool progress_ = false;
};

bool ExecLoop::QueueOutput(const v1::ExecOutput& out) {
  std::string payload;
  out.SerializeToString(&payload);
  return protocol::AppendFrame(payload, &outbound_);
}

void ExecLoop::KillGroup() {
  if (!killed_) {
    // The group outlives a reaped leader while members remain (the kernel keeps the id);
    // the pid itself is only ours until it is reaped.
    ::kill(-s_.pid, SIGKILL);
    if (!exited_) {
      ::kill(s_.pid, SIGKILL);  // In case it left its group.
    }
    killed_ = true;
  }
}

void ExecLoop::CloseStdin() {
  if (request_.tty()) {
    // A pty has no half-close: closing the master hangs the session up. ^D is what a user
    // typing EOF sends (effective at the start of a line in canonical mode).
    if (s_.stdout_r.get() >= 0) {
      (void)!::write(s_.stdout_r.get(), "\x04", 1);
    }
  } else {
    s_.stdin_w.Reset();
  }
}

bool ExecLoop::HandleInput(const v1::ExecInput& input) {
  switch (input.input_case()) {
    case v1::ExecInput::kStdin:
      if (request_.stdin() && !stdin_eof_requested_) {
        stdin_pending_.append(input.stdin());
      }
      return true;
    case v1::ExecInput::kStdinEof:
      if (input.stdin_eof() && !stdin_eof_requested_) {
        stdin_eof_requested_ = true;
        if (stdin_pending_.empty()) {
          CloseStdin();
        }
      }
      return true;
    case v1::ExecInput::kResize:
      if (request_.tty()) {
        winsize ws{};
        ws.ws_row = static_cast<unsigned short>(input.resize().rows());
        ws.ws_col = static_cast<unsigned short>(input.resize().cols());
        ::ioctl(s_.stdout_r.get(), TIOCSWINSZ, &ws);  // The kernel sends SIGWINCH.
      }
      return true;
    case v1::ExecInput::kSignal:
      if (input.signal() > 0 && input.signal() < NSIG) {
        ::kill(-s_.pid, input.signal());
      }
      return true;
    case v1::ExecInput::INPUT_NOT_SET:
      return false;
  }
  return false;
}

// Reads what the host sent; false when the host broke the protocol.
bool ExecLoop::ReadHost() {
  char buf[kReadChunk];
  ssize_t n = ::recv(conn_.fd, buf, sizeof(buf), MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      return true;
    }
    host_gone_ = true;
    return true;
  }
  if (n == 0) {
    // Half-close: no more input, as if stdin_eof. Output still flows.
    host_input_done_ = true;
    if (!stdin_eof_requested_) {
      stdin_eof_requested_ = true;
      if (stdin_pending_.empty()) {
        CloseStdin();
      }
    }
    return true;
  }
  progress_ = true;
  decoder_.Feed(buf, static_cast<size_t>(n));
  std::string payload;
  while (true) {
    auto result = decoder_.Next(&payload);
    if (result == protocol::FrameDecoder::Result::kNeedMore) {
      return true;
    }
    if (result == protocol::FrameDecoder::Result::kError) {
      return false;
    }
    v1::ExecInput input;
    if (!input.ParseFromString(payload) || !HandleInput(input)) {
      return false;
    }
  }
}

void ExecLoop::ReadStream(Fd* fd, bool is_stderr, bool* eof) {
  char buf[kReadChunk];
  ssize_t n = ::read(fd->get(), buf, sizeof(buf));
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    return;
  }
  if (n <= 0) {
    // EOF, or EIO from a pty master once the last slave holder is gone.
    *eof = true;
    fd->Reset();
    return;
  }
  progress_ = true;
  v1::ExecOutput out;
  if (is_stderr) {
    out.set_stderr(buf, static_cast<size_t>(n));
  } else {
    out.set_stdout(buf, static_cast<size_t>(n));
  }
  QueueOutput(out);
}

bool ExecLoop::FlushOutbound() {
  while (outbound_offset_ < outbound_.size()) {
    ssize_t n = ::send(conn_.fd, outbound_.data() + outbound_offset_,
                       outbound_.size() - outbound_offset_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN) {
        break;
      }
      host_gone_ = true;
      return false;
    }
    outbound_offset_ += static_cast<size_t>(n);
    progress_ = true;
  }
  if (outbound_offset_ == outbound_.size()) {
    outbound_.clear();
    outbound_offset_ = 0;
  }
  return true;
}

void ExecLoop::FlushStdin() {
  const int fd = request_.tty() ? s_.stdout_r.get() : s_.stdin_w.get();
  if (fd < 0) {
    stdin_pending_.clear();  // Closed (the command exited or closed its stdin).
    return;
  }
  ssize_t n = ::write(fd, stdin_pending_.data(), stdin_pending_.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      return;
    }
    // EPIPE: the command closed its stdin; what it did not read is dropped.
    stdin_pending_.clear();
    if (!request_.tty()) {
      s_.stdin_w.Reset();
    }
    return;
  }
  progress_ = true;
  stdin_pending_.erase(0, static_cast<size_t>(n));
  if (stdin_pending_.empty() && stdin_eof_requested_) {
    CloseStdin();
  }
}

void ExecLoop::Run() {
  const auto start = Clock::now();
  const bool has_deadline = request_.timeout_ms() > 0;
  const Clock::time_point deadline = start + std::chrono::milliseconds(request_.timeout_ms());
  Fd exit_event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::optional<ReapedStatus> reaped;
  Reaper* reaper = conn_.ctx->reaper;
  const pid_t pid = s_.pid;
  const int exit_fd = exit_event.get();
  std::thread waiter([&reaped, reaper, pid, exit_fd] {
    reaped = reaper->Wait(pid, -1);
    uint64_t one = 1;
    (void)!::write(exit_fd, &one, sizeof(one));
  });

  SetNonBlocking(s_.stdout_r.get());
  if (s_.stderr_r.get() >= 0) {
    SetNonBlocking(s_.stderr_r.get());
  }
  if (s_.stdin_w.get() >= 0) {
    SetNonBlocking(s_.stdin_w.get());
  }
  bool stdout_eof = false;
  bool stderr_eof = s_.stderr_r.get() < 0;
  Clock::time_point exited_at;
  Clock::time_point last_progress = Clock::now();

  while (!host_gone_) {
    if (exited_ && stdout_eof && stderr_eof) {
      break;
    }
    if (exited_ && Clock::now() - last_progress > kDrainGrace) {
      break;  // Descendants still hold the pipes; the command itself is done.
    }
    int timeout_ms = -1;
    const auto now = Clock::now();
    if (has_deadline && !killed_) {
      if (now >= deadline) {
        timed_out_ = true;
        KillGroup();
        continue;
      }
      timeout_ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1);
    }
    if (exited_) {
      int grace = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(kDrainGrace - (now - last_progress))
              .count() + 1);
      timeout_ms = timeout_ms < 0 ? grace : std::min(timeout_ms, grace);
    }

    enum { kHost, kOut, kErr, kIn, kExit, kCount };
    pollfd fds[kCount] = {};
    for (auto& p : fds) {
      p.fd = -1;
    }
    const bool want_output = outbound_.size() - outbound_offset_ < kMaxOutboundBytes;
    fds[kHost].fd = conn_.fd;
    fds[kHost].events = static_cast<short>(
        (!host_input_done_ && stdin_pending_.size() < kMaxPendingStdin ? POLLIN : 0) |
        (outbound_offset_ < outbound_.size() ? POLLOUT : 0));
    if (!stdout_eof && want_output) {
      fds[kOut].fd = s_.stdout_r.get();
      fds[kOut].events = POLLIN;
    }
    if (!stderr_eof && want_output) {
      fds[kErr].fd = s_.stderr_r.get();
      fds[kErr].events = POLLIN;
    }
    if (!stdin_pending_.empty()) {
      fds[kIn].fd = request_.tty() ? s_.stdout_r.get() : s_.stdin_w.get();
      fds[kIn].events = POLLOUT;
      if (fds[kIn].fd < 0) {
        stdin_pending_.clear();
      }
    }
    fds[kExit].fd = exited_ ? -1 : exit_fd;
    fds[kExit].events = POLLIN;

    int rc = ::poll(fds, kCount, timeout_ms);
    if (rc < 0 && errno != EINTR) {
      KillGroup();
      break;
    }
    if (rc <= 0) {
      continue;
    }
    progress_ = false;
    if (fds[kHost].revents & (POLLHUP | POLLERR)) {
      // The host hung up completely: nobody will read the output. Kill, reap, leave.
      host_gone_ = true;
      break;
    }
    if (fds[kHost].revents & POLLOUT) {
      FlushOutbound();
    }
    if (fds[kHost].revents & POLLIN) {
      if (!ReadHost()) {
        // Malformed input: the stream is out of sync and cannot carry an Error frame the host
        // would recognise mid-exec, so end it without an exit frame (see agent-protocol.md).
        host_gone_ = true;
        break;
      }
    }
    if (fds[kIn].revents & (POLLOUT | POLLERR | POLLHUP)) {
      FlushStdin();
    }
    if (fds[kOut].revents & (POLLIN | POLLHUP | POLLERR)) {
      ReadStream(&s_.stdout_r, false, &stdout_eof);
    }
    if (fds[kErr].revents & (POLLIN | POLLHUP | POLLERR)) {
      ReadStream(&s_.stderr_r, true, &stderr_eof);
    }
    if (fds[kExit].revents & POLLIN) {
      exited_ = true;
      exited_at = Clock::now();
      progress_ = true;
    }
    if (progress_) {
      last_progress = Clock::now();
    }
    if (outbound_offset_ < outbound_.size()) {
      FlushOutbound();
    }
  }

  if (host_gone_ || !exited_) {
    KillGroup();
  }
  waiter.join();
  s_.stdout_r.Reset();
  s_.stderr_r.Reset();
  s_.stdin_w.Reset();
  if (host_gone_) {
    return;
  }
  v1::ExecOutput out;
  v1::ExecExit* exit = out.mutable_exit();
  const int status = reaped ? reaped->wait_status : 0;
  if (WIFSIGNALED(status)) {
    exit->set_signal(WTERMSIG(status));
  } else {
    exit->set_exit_code(WEXITSTATUS(status));
  }
  exit->set_timed_out(timed_out_);
  exit->set_duration_us(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          (exited_ ? exited_at : Clock::now()) - start)
          .count()));
  exit->set_peak_rss_kib(reaped ? static_cast<uint64_t>(reaped->usage.ru_maxrss) : 0);
  QueueOutput(out);
  // The rest goes out blocking: the exit frame must reach the host.
  ::fcntl(conn_.fd, F_SETFL, ::fcntl(conn_.fd, F_GETFL) & ~O_NONBLOCK);
  while (outbound_offset_ < outbound_.size()) {
    ssize_t n = ::send(conn_.fd, outbound_.data() + outbound_offset_,
                       outbound_.size() - outbound_offset_, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;
    }
    outbound_offset_ += static_cast<size_t>(n);
  }
}

}  // namespace

void HandleExec(const Connection& conn, const v1::ExecRequest& request) {
  StartedCommand started = StartCommand(conn, request);
  if (started.pid < 0) {
    SendError(conn, started.code, started.error);
    return;
  }
  v1::Response response;
  response.mutable_exec_started()->set_pid(started.pid);
  if (!SendResponse(conn, response)) {
    ::kill(-started.pid, SIGKILL);
    ::kill(started.pid, SIGKILL);
    conn.ctx->reaper->Wait(started.pid, -1);
    return;
  }
  ExecLoop loop(conn, request, std::move(started));
  loop.Run();
}

}  // namespace supermachine::agent::rpc
