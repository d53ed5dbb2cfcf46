// File: wire.cc
// types.h <-> proto/agent.proto field mapping, and ExitInfo::ToString.
#include "daemon/agent/wire.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace supermachine::agent {
namespace {

// Durations go on the wire as uint32 milliseconds; a positive duration below 1 ms must not
// become 0, which means "no limit".
uint32_t ToWireMs(absl::Duration d) {
  if (d <= absl::ZeroDuration()) {
    return 0;
  }
  int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1)));
  return static_cast<uint32_t>(std::clamp<int64_t>(ms, 1, UINT32_MAX));
}

}  // namespace

std::string ExitInfo::ToString() const {
  std::string s =
      signaled ? absl::StrCat("killed by signal ", signal) : absl::StrCat("exited ", code);
  if (timed_out) {
    absl::StrAppend(&s, " (timed out)");
  }
  return s;
}

ExitInfo ExitFromProto(const v1::ExecExit& e) {
  ExitInfo info;
  if (e.how_case() == v1::ExecExit::kSignal) {
    info.signaled = true;
    info.signal = e.signal();
  } else {
    info.code = e.exit_code();
  }
  info.timed_out = e.timed_out();
  info.duration = absl::Microseconds(static_cast<int64_t>(e.duration_us()));
  info.peak_rss_kib = e.peak_rss_kib();
  return info;
}

FileInfo FileInfoFromProto(const v1::FileInfo& f) {
  return {.exists = f.exists(),
          .size = f.size(),
          .mode = f.mode(),
          .uid = f.uid(),
          .gid = f.gid(),
          .mtime_ns = f.mtime_ns()};
}

PingInfo PingFromProto(const v1::Pong& p) {
  return {.agent_version = p.agent_version(),
          .uptime_seconds = p.uptime_seconds(),
          .generation = p.generation()};
}

void ExecToProto(const ExecOptions& o, v1::ExecRequest* r) {
  for (const auto& a : o.argv) {
    r->add_argv(a);
  }
  for (const auto& e : o.env) {
    r->add_env(e);
  }
  r->set_replace_env(o.replace_env);
  r->set_cwd(o.cwd);
  r->set_user(o.user);
  r->set_tty(o.tty);
  if (o.tty) {
    r->mutable_window()->set_rows(o.window.rows);
    r->mutable_window()->set_cols(o.window.cols);
  }
  r->set_timeout_ms(ToWireMs(o.timeout));
  r->set_stdin(o.attach_stdin);
}

void ReadyToProto(const ReadyCondition& c, v1::WaitReadyRequest* r) {
  switch (c.kind) {
    case ReadyCondition::Kind::kListenerPort:
      r->set_listener_port(c.port);
      break;
    case ReadyCondition::Kind::kWorkloadExited:
      r->set_workload_exited(true);
      break;
    case ReadyCondition::Kind::kIdle:
      r->set_idle_ms(std::max<uint32_t>(ToWireMs(c.idle), 1));
      break;
    case ReadyCondition::Kind::kParked:
      r->set_parked(true);
      break;
  }
}

void RestoreToProto(const RestoreInfo& i, v1::RestoredRequest* r) {
  r->set_entropy(i.entropy);
  r->set_wall_clock_ns(absl::ToUnixNanos(i.wall_clock));
  r->set_vm_id(i.vm_id);
  r->set_hostname(i.hostname);
  r->set_machine_id(i.machine_id);
  r->set_generation(i.generation);
}

}  // namespace supermachine::agent
