// File: guest-agent/rpc/readiness.cc
// wait_ready and wait_exit, and the pure /proc parsers they use (readiness.h). Every wait is
// sliced so a host that hangs up (or a server Stop()) ends it within a slice.
#include "guest-agent/rpc/readiness.h"

#include <charconv>
#include <string>

#include "guest-agent/rpc/connection.h"

namespace supermachine::agent::rpc {
namespace {

constexpr int kSliceMs = 50;              // Poll period of every condition.

// Next whitespace-separated field of `text` from *pos.
std::string_view NextField(std::string_view text, size_t* pos) {
  while (*pos < text.size() && (text[*pos] == ' ' || text[*pos] == '\t')) {
    ++*pos;
  }
  size_t start = *pos;
  while (*pos < text.size() && text[*pos] != ' ' && text[*pos] != '\t') {
    ++*pos;
  }
  return text.substr(start, *pos - start);
}

void ExitToProto(const ProcessExit& exit, v1::ExecExit* out) {
  if (exit.signaled) {
    out->set_signal(exit.signal);
  } else {
    out->set_exit_code(exit.exit_code);
  }
  out->set_timed_out(exit.timed_out);
  out->set_duration_us(exit.duration_us);
  out->set_peak_rss_kib(exit.peak_rss_kib);
}

}  // namespace

bool HasTcpListener(std::string_view table, uint16_t port) {
  // "  sl  local_address rem_address   st ..." then rows like
  // "   0: 00000000:1F90 00000000:0000 0A ..." (tcp6: 32 hex digits of address).
  size_t line_start = 0;
  while (line_start < table.size()) {
    size_t line_end = table.find('\n', line_start);
    if (line_end == std::string_view::npos) {
      line_end = table.size();
    }
    std::string_view line = table.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    size_t pos = 0;
    std::string_view slot = NextField(line, &pos);
    std::string_view local = NextField(line, &pos);
    NextField(line, &pos);  // remote address
    std::string_view state = NextField(line, &pos);
    if (slot.empty() || slot.back() != ':' || state != "0A") {
      continue;  // Header, malformed, or not LISTEN.
    }
    size_t colon = local.rfind(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    std::string_view hex = local.substr(colon + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), value, 16);
    if (ec == std::errc() && end == hex.data() + hex.size() && !hex.empty() && value == port) {
      return true;
    }
  }
  return false;
}

std::optional<CpuTimes> ParseProcStat(std::string_view text) {
  size_t line_start = 0;
  while (line_start < text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string_view::npos) {
      line_end = text.size();
    }
    std::string_view line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    size_t pos = 0;
    if (NextField(line, &pos) != "cpu") {
      continue;
    }
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    // counted in user, so only the first eight fields add up to the total.
    CpuTimes times;
    for (int i = 0; i < 8; ++i) {
      std::string_view field = NextField(line, &pos);
      if (field.empty()) {
        if (i < 4) {
          return std::nullopt;  // Fewer fields than any kernel prints.
        }
        break;
      }
      uint64_t value = 0;
      auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
      if (ec != std::errc() || end != field.data() + field.size()) {
        return std::nullopt;
      }
      times.total += value;
      if (i == 3 || i == 4) {
        times.idle += value;
      }
    }
    return times;
  }
  return std::nullopt;
}

double IdleFraction(const CpuTimes& before, const CpuTimes& after) {
  if (after.total <= before.total) {
    return 1.0;
  }
  const uint64_t total = after.total - before.total;
  const uint64_t idle = after.idle >= before.idle ? after.idle - before.idle : 0;
  return idle >= total ? 1.0 : static_cast<double>(idle) / static_cast<double>(total);
}

bool IdleTracker::Observe(const CpuTimes& sample, TimePoint now) {
  if (!last_ || IdleFraction(*last_, sample) < kIdleThreshold) {
    idle_since_ = now;
  }
  last_ = sample;
  return now - idle_since_ >= need_;
}

void HandleWaitReady(const Connection& conn, const v1::WaitReadyRequest& request) {
  const auto start = Clock::now();
  const bool has_deadline = request.timeout_ms() > 0;
  const auto deadline = start + std::chrono::milliseconds(request.timeout_ms());
  std::string what;
  switch (request.condition_case()) {
    case v1::WaitReadyRequest::kListenerPort:
      if (request.listener_port() == 0 || request.listener_port() > 65535) {
        SendError(conn, kInvalidArgument, "wait_ready: listener_port must be 1..65535");
        return;
      }
      what = "a TCP listener on port " + std::to_string(request.listener_port());
      break;
    case v1::WaitReadyRequest::kWorkloadExited:
      what = "the workload to exit";
      break;
    case v1::WaitReadyRequest::kIdleMs:
      what = "the CPU to be idle for " + std::to_string(request.idle_ms()) + " ms";
      break;
    case v1::WaitReadyRequest::kParked:
      what = "the workload to be parked (held unstarted, or exited)";
      break;
    case v1::WaitReadyRequest::CONDITION_NOT_SET:
      SendError(conn, kInvalidArgument, "wait_ready: no condition given");
      return;
  }

  IdleTracker idle(std::chrono::milliseconds(request.idle_ms()));
  while (true) {
    bool ready = false;
    switch (request.condition_case()) {
      case v1::WaitReadyRequest::kListenerPort: {
        const auto port = static_cast<uint16_t>(request.listener_port());
        ready = HasTcpListener(ReadSmallFile("/proc/net/tcp"), port) ||
                HasTcpListener(ReadSmallFile("/proc/net/tcp6"), port);
        break;
      }
      case v1::WaitReadyRequest::kWorkloadExited:
        ready = conn.ctx->workload->WaitExit(0).has_value();  // The case names the condition.
        break;
      case v1::WaitReadyRequest::kIdleMs: {
        std::optional<CpuTimes> now_cpu = ParseProcStat(ReadSmallFile("/proc/stat"));
        const auto now = Clock::now();
        if (!now_cpu) {
          SendError(conn, kInternal, "wait_ready: /proc/stat has no aggregate cpu line");
          return;
        }
        ready = idle.Observe(*now_cpu, now);
        break;
      }
      case v1::WaitReadyRequest::kParked:
        ready = conn.ctx->workload->parked() || conn.ctx->workload->WaitExit(0).has_value();
        break;
      case v1::WaitReadyRequest::CONDITION_NOT_SET:
        break;
    }
    const auto now = Clock::now();
    if (ready) {
      v1::Response response;
      response.mutable_ready()->set_waited_us(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(now - start).count()));
      SendResponse(conn, response);
      return;
    }
    if (has_deadline && now >= deadline) {
      SendError(conn, kDeadlineExceeded,
                "wait_ready: gave up waiting for " + what + " after " +
                    std::to_string(request.timeout_ms()) + " ms");
      return;
    }
    int slice = kSliceMs;
    if (has_deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
      slice = static_cast<int>(std::min<int64_t>(slice, left + 1));
    }
    if (request.condition_case() == v1::WaitReadyRequest::kWorkloadExited ||
        request.condition_case() == v1::WaitReadyRequest::kParked) {
      // Block in the supervisor for the slice instead of sleeping: the exit is seen at once.
      if (conn.ctx->workload->WaitExit(slice).has_value()) {
        continue;
      }
      slice = 0;
    }
    if (PeerGone(conn.fd, slice)) {
      return;
    }
  }
}

void HandleWaitExit(const Connection& conn) {
  while (true) {
    std::optional<WorkloadExitInfo> exit = conn.ctx->workload->WaitExit(kSliceMs * 4);
    if (exit) {
      v1::Response response;
      v1::WorkloadExit* out = response.mutable_workload_exit();
      ExitToProto(exit->status, out->mutable_status());
      out->set_restarts(exit->restarts);
      SendResponse(conn, response);
      return;
    }
    if (PeerGone(conn.fd, 0)) {
      return;
    }
  }
}

}  // namespace supermachine::agent::rpc
