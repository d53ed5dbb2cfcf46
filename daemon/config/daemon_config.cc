// File: daemon_config.cc
#include "daemon/config/daemon_config.h"

#include <fstream>
#include <sstream>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace supermachine::config {
namespace {

constexpr uint64_t kMaxConsoleLogMib = 1024;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("config file ", path, ": cannot be read"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status CheckHostPort(const std::string& what, const std::string& addr) {
  size_t colon = addr.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(addr.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", addr, "': expected HOST:PORT, e.g. 127.0.0.1:9464"));
  }
  return absl::OkStatus();
}

// worker_uid_range: {"first": N, "count": M}, N > 0 (not root), M > 0, the last uid below
// 2^32 - 1 ((uid_t)-1 means "unchanged" to setresuid).
absl::Status ApplyUidRange(const nlohmann::json& j, DaemonConfig::UidRange* out) {
  constexpr char kShape[] =
      "config file: worker_uid_range: expected {\"first\": N, \"count\": M} with N > 0 (not "
      "root), M > 0 and N + M - 1 below 4294967295, or \"auto\" or \"off\"";
  if (!j.is_object()) {
    return absl::InvalidArgumentError(kShape);
  }
  DaemonConfig::UidRange range;
  bool has_first = false;
  bool has_count = false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "first" && it.key() != "count") {
      return absl::InvalidArgumentError(absl::StrCat(
          "config file: worker_uid_range: unknown field '", it.key(), "' (known: first, count)"));
    }
    if (!it.value().is_number_unsigned() || it.value().get<uint64_t>() == 0 ||
        it.value().get<uint64_t>() >= 0xffffffffu) {
      return absl::InvalidArgumentError(kShape);
    }
    const auto v = static_cast<uint32_t>(it.value().get<uint64_t>());
    if (it.key() == "first") {
      range.first = v;
      has_first = true;
    } else {
      range.count = v;
      has_count = true;
    }
  }
  if (!has_first || !has_count || uint64_t{range.first} + range.count - 1 >= 0xffffffffu) {
    return absl::InvalidArgumentError(kShape);
  }
  *out = range;
  return absl::OkStatus();
}

// The balloon target is a share of guest RAM (the same bounds as daemon/vm/idle_balloon.h,
// which this library does not link): 0 would be no policy (that is
// balloon_idle_after_s 0), and a guest left without RAM cannot run the agent that deflates it.
// Every top-level config field: the unknown-field error and `--help` both list them.
constexpr char kConfigFields[] =
    "socket, socket_mode, socket_group, state_dir, snapshots_dir, metrics_address, log_level, "
    "worker_binary, vm_dir, kernel, guest_agent, pools, default_pool, tcp, tls_cert, tls_key, "
    "tls_client_ca, token_file, worker_seccomp, worker_jail, worker_uid, worker_gid, "
    "worker_uid_range, worker_cgroup_parent, worker_balloon, worker_ksm, console_log_max_mib, "
    "keep_vms_on_stop, balloon_idle_after_s, balloon_idle_target_percent";

constexpr uint32_t kMinBalloonTargetPercent = 1;
constexpr uint32_t kMaxBalloonTargetPercent = 95;
constexpr uint64_t kMaxBalloonIdleAfterS = uint64_t{30} * 24 * 3600;

std::string BalloonPercentError(const std::string& value) {
  return absl::StrCat("config file: 'balloon_idle_target_percent' is ", value,
                      ": it must be a whole percentage of guest RAM from ",
                      kMinBalloonTargetPercent, " to ", kMaxBalloonTargetPercent,
                      " (to turn the policy off, set balloon_idle_after_s to 0)");
}

absl::Status ApplyPool(const std::string& what, const nlohmann::json& j, PoolSettings* out) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected an object such as "
                                                   "{\"min\": 2, \"max\": 8}"));
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    uint32_t* field = nullptr;
    if (it.key() == "min") {
      field = &out->min;
    } else if (it.key() == "max") {
      field = &out->max;
    } else if (it.key() == "idle_timeout_s") {
      field = &out->idle_timeout_s;
    } else if (it.key() == "acquire_timeout_s") {
      field = &out->acquire_timeout_s;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": unknown field '", it.key(),
          "' (known: min, max, idle_timeout_s, acquire_timeout_s)"));
    }
    if (!it.value().is_number_unsigned() || it.value().get<uint64_t>() > 1000000) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ".", it.key(), ": expected a non-negative integer"));
    }
    *field = static_cast<uint32_t>(it.value().get<uint64_t>());
  }
  if (out->max == 0 || out->min > out->max) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": min (", out->min, ") must not exceed max (", out->max, "), and max must be > 0"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyPoolJson(const std::string& what, const std::string& json_text,
                           PoolSettings* out) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not JSON"));
  }
  return ApplyPool(what, j, out);
}

absl::StatusOr<uint32_t> ParseSocketMode(const std::string& text) {
  uint32_t mode = 0;
  bool digits = !text.empty() && text.size() <= 4 &&
                text.find_first_not_of("01234567") == std::string::npos;
  if (digits) {
    for (char c : text) {
      mode = mode * 8 + static_cast<uint32_t>(c - '0');
    }
  }
  if (!digits || mode > 0777) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket mode '", text, "': expected octal permission bits such as 0660"));
  }
  return mode;
}

absl::Status ApplyJsonConfig(const std::string& json_text, DaemonConfig* config) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config file: not a JSON object");
  }
  // Plain names rather than structured bindings: the lambda below captures them, which
  // clang (used by clang-tidy here) does not allow for bindings before C++20's P1091 landed.
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& value = it.value();
    auto string_field = [&](std::string* dst) -> absl::Status {
      if (!value.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat("config file: '", key, "' must be a string"));
      }
      *dst = value.get<std::string>();
      return absl::OkStatus();
    };
    absl::Status st;
    if (key == "socket") {
      st = string_field(&config->socket);
    } else if (key == "socket_group") {
      st = string_field(&config->socket_group);
    } else if (key == "state_dir") {
      st = string_field(&config->state_dir);
    } else if (key == "snapshots_dir") {
      st = string_field(&config->snapshots_dir);
    } else if (key == "metrics_address") {
      st = string_field(&config->metrics_address);
    } else if (key == "log_level") {
      std::string level;
      st = string_field(&level);
      if (st.ok() && !ParseLogLevel(level, &config->log_level)) {
        st = absl::InvalidArgumentError(absl::StrCat(
            "config file: log_level '", level, "': expected debug, info, warn or error"));
      }
    } else if (key == "worker_binary") {
      st = string_field(&config->worker_binary);
    } else if (key == "kernel") {
      st = string_field(&config->kernel);
    } else if (key == "guest_agent") {
      st = string_field(&config->guest_agent);
    } else if (key == "vm_dir") {
      st = string_field(&config->vm_dir);
    } else if (key == "tcp") {
      st = string_field(&config->tcp);
    } else if (key == "tls_cert") {
      st = string_field(&config->tls_cert);
    } else if (key == "tls_key") {
      st = string_field(&config->tls_key);
    } else if (key == "tls_client_ca") {
      st = string_field(&config->tls_client_ca);
    } else if (key == "token_file") {
      st = string_field(&config->token_file);
    } else if (key == "worker_seccomp") {
      st = string_field(&config->worker_seccomp);
      if (st.ok() && config->worker_seccomp != "on" && config->worker_seccomp != "off" &&
          config->worker_seccomp != "trap") {
        st = absl::InvalidArgumentError(absl::StrCat("config file: worker_seccomp '",
                                                     config->worker_seccomp,
                                                     "': expected on, off or trap"));
      }
    } else if (key == "worker_jail") {
      if (value.is_boolean()) {
        config->worker_jail = value.get<bool>();
      } else if (value == "auto") {
        config->worker_jail.reset();
      } else {
        st = absl::InvalidArgumentError(
            "config file: 'worker_jail' must be true, false or \"auto\" (on when the daemon "
            "runs as root)");
      }
    } else if (key == "worker_balloon") {
      if (value.is_boolean()) {
        config->worker_balloon = value.get<bool>();
      } else {
        st = absl::InvalidArgumentError("config file: 'worker_balloon' must be true or false");
      }
    } else if (key == "worker_ksm") {
      if (value.is_boolean()) {
        config->worker_ksm = value.get<bool>();
      } else {
        st = absl::InvalidArgumentError("config file: 'worker_ksm' must be true or false");
      }
    } else if (key == "keep_vms_on_stop") {
      if (value.is_boolean()) {
        config->keep_vms_on_stop = value.get<bool>();
      } else {
        st = absl::InvalidArgumentError(
            "config file: 'keep_vms_on_stop' must be true or false");
      }
    } else if (key == "console_log_max_mib") {
      // Bounded so the byte count cannot overflow the worker's flag; 1 GiB of console per file
      // is already far past what `smctl logs` is for.
      if (value.is_number_unsigned() && value.get<uint64_t>() <= kMaxConsoleLogMib) {
        config->console_log_max_mib = static_cast<uint32_t>(value.get<uint64_t>());
      } else {
        st = absl::InvalidArgumentError(absl::StrCat(
            "config file: 'console_log_max_mib' must be a number of MiB from 0 (unbounded) to ",
            kMaxConsoleLogMib));
      }
    } else if (key == "balloon_idle_after_s") {
      // Bounded so that seconds stay far inside absl::Duration and a typo of a few extra
      // digits is caught: 30 days of idleness is already no policy at all.
      if (value.is_number_unsigned() && value.get<uint64_t>() <= kMaxBalloonIdleAfterS) {
        config->balloon_idle_after_s = static_cast<uint32_t>(value.get<uint64_t>());
      } else {
        st = absl::InvalidArgumentError(absl::StrCat(
            "config file: 'balloon_idle_after_s' must be a number of seconds from 0 (policy "
            "off) to ", kMaxBalloonIdleAfterS));
      }
    } else if (key == "balloon_idle_target_percent") {
      if (value.is_number_unsigned() && value.get<uint64_t>() >= kMinBalloonTargetPercent &&
          value.get<uint64_t>() <= kMaxBalloonTargetPercent) {
        config->balloon_idle_target_percent = static_cast<uint32_t>(value.get<uint64_t>());
      } else {
        st = absl::InvalidArgumentError(BalloonPercentError(value.dump()));
      }
    } else if (key == "worker_uid" || key == "worker_gid") {
      if (value.is_number_unsigned() && value.get<uint64_t>() > 0 &&
          value.get<uint64_t>() < 0xffffffffu) {
        (key == "worker_uid" ? config->worker_uid : config->worker_gid) =
            static_cast<uint32_t>(value.get<uint64_t>());
      } else {
        st = absl::InvalidArgumentError(
            absl::StrCat("config file: '", key, "' must be a non-zero numeric id (not root)"));
      }
    } else if (key == "worker_uid_range") {
      if (value == "auto") {
        config->worker_uid_range.reset();
      } else if (value == "off") {
        config->worker_uid_range = DaemonConfig::UidRange{};
      } else {
        DaemonConfig::UidRange range;
        st = ApplyUidRange(value, &range);
        if (st.ok()) {
          config->worker_uid_range = range;
        }
      }
    } else if (key == "worker_cgroup_parent") {
      st = string_field(&config->worker_cgroup_parent);
    } else if (key == "default_pool") {
      st = ApplyPool("config file: default_pool", value, &config->default_pool);
    } else if (key == "pools") {
      if (!value.is_object()) {
        st = absl::InvalidArgumentError(
            "config file: pools: expected an object {\"SNAPSHOT\": {\"min\": ..., \"max\": ...}}");
      }
      for (auto p = value.begin(); st.ok() && p != value.end(); ++p) {
        PoolSettings settings = config->default_pool;
        st = ApplyPool(absl::StrCat("config file: pools.", p.key()), p.value(), &settings);
        config->pools[p.key()] = settings;
      }
    } else if (key == "socket_mode") {
      // A JSON number cannot be octal; 660 as a number is read as the digits "660".
      std::string text = value.is_string()   ? value.get<std::string>()
                         : value.is_number_unsigned() ? std::to_string(value.get<uint64_t>())
                                                      : std::string("?");
      absl::StatusOr<uint32_t> mode = ParseSocketMode(text);
      if (mode.ok()) {
        config->socket_mode = *mode;
      } else {
        st = absl::InvalidArgumentError(absl::StrCat("config file: ", mode.status().message()));
      }
    } else {
      st = absl::InvalidArgumentError(absl::StrCat(
          "config file: unknown field '", key,
          "' (known: ", kConfigFields, ")"));
    }
    if (!st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateDaemonConfig(const DaemonConfig& c) {
  if (c.socket.empty()) {
    return absl::InvalidArgumentError("socket path is empty");
  }
  if (c.state_dir.empty()) {
    return absl::InvalidArgumentError("state dir is empty");
  }
  if ((c.worker_uid != 0) != (c.worker_gid != 0)) {
    return absl::InvalidArgumentError("config file: give both worker_uid and worker_gid, or neither");
  }
  // Whether an unset worker_jail comes out on depends on the host: worker_sandbox.h checks
  // that at start. Here only what the file itself contradicts.
  const bool jail_off = c.worker_jail.has_value() && !*c.worker_jail;
  if (c.worker_uid != 0 && jail_off) {
    return absl::InvalidArgumentError(
        "config file: worker_uid/worker_gid need the jail (it drops privileges), but "
        "\"worker_jail\" is false");
  }
  const bool explicit_range = c.worker_uid_range.has_value() && c.worker_uid_range->count != 0;
  if (explicit_range && c.worker_uid != 0) {
    return absl::InvalidArgumentError(
        "config file: worker_uid_range and worker_uid/worker_gid exclude each other: give "
        "each VM its own uid (worker_uid_range) or all workers one (worker_uid, worker_gid)");
  }
  if (explicit_range && jail_off) {
    return absl::InvalidArgumentError(
        "config file: worker_uid_range needs the jail (it drops privileges), but "
        "\"worker_jail\" is false");
  }
  if (c.balloon_idle_target_percent < kMinBalloonTargetPercent ||
      c.balloon_idle_target_percent > kMaxBalloonTargetPercent) {
    return absl::InvalidArgumentError(
        BalloonPercentError(std::to_string(c.balloon_idle_target_percent)));
  }
  if (!c.metrics_address.empty()) {
    absl::Status st = CheckHostPort("metrics address", c.metrics_address);
    if (!st.ok()) {
      return st;
    }
  }
  const bool any_remote = !c.tls_cert.empty() || !c.tls_key.empty() || !c.tls_client_ca.empty() ||
                          !c.token_file.empty();
  if (c.tcp.empty()) {
    if (any_remote) {
      return absl::InvalidArgumentError(
          "--tls-cert/--tls-key/--tls-client-ca/--token-file only apply with --tcp");
    }
    return absl::OkStatus();
  }
  absl::Status st = CheckHostPort("--tcp", c.tcp);
  if (!st.ok()) {
    return st;
  }
  if (c.tls_cert.empty() || c.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "--tcp requires TLS: pass --tls-cert and --tls-key (and --tls-client-ca for mTLS); "
        "supermachined never serves its API over plain TCP");
  }
  if (c.token_file.empty()) {
    return absl::InvalidArgumentError(
        "--tcp requires --token-file: remote clients must present a bearer token");
  }
  return absl::OkStatus();
}

ParsedFlags ParseDaemonFlags(int argc, const char* const* argv, const UserEnvironment& env,
                             const std::string& version) {
  ParsedFlags out;
  DaemonConfig flags;
  std::string config_file;
  std::string socket_mode;
  std::string log_level;
  bool print_version = false;

  CLI::App app{
      "supermachined: turns OCI images into snapshotted KVM microVMs and hands out\n"
      "pre-restored VMs over a gRPC control plane on a Unix socket.",
      "supermachined"};
  app.add_option("--config", config_file,
                 absl::StrCat("JSON config file (fields: ", kConfigFields,
                              "; docs/operations.md); flags override it"));
  auto* socket_opt = app.add_option(
      "--socket", flags.socket,
      "Unix socket to listen on (default " + DefaultSocketPath(env) + ")");
  auto* mode_opt = app.add_option("--socket-mode", socket_mode, "Socket permission bits (default 0660)");
  auto* group_opt = app.add_option("--socket-group", flags.socket_group,
                                   "Group owning the socket; its members may use smctl");
  auto* state_opt = app.add_option("--state-dir", flags.state_dir,
                                   "Directory for the store (default " + DefaultStateDir(env) + ")");
  auto* snaps_opt = app.add_option("--snapshots-dir", flags.snapshots_dir,
                                   "Directory for snapshots (default <state-dir>/snapshots)");
  auto* metrics_opt = app.add_option(
      "--metrics-address", flags.metrics_address,
      "Prometheus /metrics HOST:PORT (default 127.0.0.1:9464; \"\" disables)");
  auto* worker_opt = app.add_option(
      "--worker-binary", flags.worker_binary,
      "supermachine-worker to restore VMs with (default: the one next to supermachined)");
  auto* level_opt = app.add_option("--log-level", log_level, "debug, info, warn or error (default info)");
  auto* tcp_opt = app.add_option(
      "--tcp", flags.tcp,
      "Also serve the API on HOST:PORT for remote clients; requires --tls-cert, --tls-key and "
      "--token-file");
  auto* cert_opt = app.add_option("--tls-cert", flags.tls_cert, "TLS certificate chain (PEM) for --tcp");
  auto* key_opt = app.add_option("--tls-key", flags.tls_key, "TLS private key (PEM) for --tcp");
  auto* ca_opt = app.add_option(
      "--tls-client-ca", flags.tls_client_ca,
      "CA (PEM) that client certificates must chain to; set, remote clients need one (mTLS)");
  auto* token_opt = app.add_option(
      "--token-file", flags.token_file,
      "File holding the bearer token every --tcp call must send (authorization: Bearer ...)");
  app.add_flag("--version", print_version, "Print the version and exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out.exit_now = true;
    out.output = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    out.exit_now = true;
    out.exit_code = 2;
    out.output = absl::StrCat("supermachined: ", e.what(), "\nRun with --help for usage.\n");
    return out;
  }
  if (print_version) {
    out.exit_now = true;
    out.output = absl::StrCat("supermachined ", version, "\n");
    return out;
  }

  DaemonConfig c;
  c.socket = DefaultSocketPath(env);
  c.state_dir = DefaultStateDir(env);
  auto fail = [&](const absl::Status& st) {
    out.exit_now = true;
    out.exit_code = 2;
    out.output = absl::StrCat("supermachined: ", st.message(), "\n");
    return out;
  };
  if (!config_file.empty()) {
    absl::StatusOr<std::string> text = ReadFile(config_file);
    if (!text.ok()) {
      return fail(text.status());
    }
    absl::Status st = ApplyJsonConfig(*text, &c);
    if (!st.ok()) {
      return fail(absl::InvalidArgumentError(absl::StrCat(config_file, ": ", st.message())));
    }
  }
  if (socket_opt->count() > 0) {
    c.socket = flags.socket;
  }
  if (group_opt->count() > 0) {
    c.socket_group = flags.socket_group;
  }
  if (state_opt->count() > 0) {
    c.state_dir = flags.state_dir;
  }
  if (snaps_opt->count() > 0) {
    c.snapshots_dir = flags.snapshots_dir;
  }
  if (metrics_opt->count() > 0) {
    c.metrics_address = flags.metrics_address;
  }
  if (worker_opt->count() > 0) {
    c.worker_binary = flags.worker_binary;
  }
  if (mode_opt->count() > 0) {
    absl::StatusOr<uint32_t> mode = ParseSocketMode(socket_mode);
    if (!mode.ok()) {
      return fail(mode.status());
    }
    c.socket_mode = *mode;
  }
  if (level_opt->count() > 0 && !ParseLogLevel(log_level, &c.log_level)) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("--log-level '", log_level, "': expected debug, info, warn or error")));
  }
  if (tcp_opt->count() > 0) {
    c.tcp = flags.tcp;
  }
  if (cert_opt->count() > 0) {
    c.tls_cert = flags.tls_cert;
  }
  if (key_opt->count() > 0) {
    c.tls_key = flags.tls_key;
  }
  if (ca_opt->count() > 0) {
    c.tls_client_ca = flags.tls_client_ca;
  }
  if (token_opt->count() > 0) {
    c.token_file = flags.token_file;
  }
  if (c.snapshots_dir.empty()) {
    c.snapshots_dir = c.state_dir + "/snapshots";
  }
  if (c.vm_dir.empty()) {
    c.vm_dir = c.state_dir + "/vms";
  }
  absl::Status st = ValidateDaemonConfig(c);
  if (!st.ok()) {
    return fail(st);
  }
  out.config = std::move(c);
  return out;
}

}  // namespace supermachine::config
