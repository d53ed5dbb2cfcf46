// File: launch_config.cc
// Flag/JSON parsing and validation of the launch config.
#include "worker/vmm/launch_config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "worker/arch/x86_64/kernel_loader.h"
#include "worker/arch/x86_64/layout.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"
#include "worker/net/egress_policy.h"
#include "worker/net/mac.h"

namespace supermachine::vmm {

absl::StatusOr<DiskConfig> ParseDiskSpec(absl::string_view spec) {
  std::vector<std::string> parts = absl::StrSplit(spec, ',');
  if (parts.empty() || parts[0].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("disk '", spec, "': expected PATH[,ro|,rw][,id=NAME]"));
  }
  DiskConfig disk;
  disk.path = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    absl::string_view p = parts[i];
    if (p == "ro") {
      disk.read_only = true;
    } else if (p == "rw") {
      disk.read_only = false;
    } else if (absl::ConsumePrefix(&p, "id=")) {
      if (p.empty() || p.size() > 20) {
        return absl::InvalidArgumentError(
            absl::StrCat("disk '", spec, "': id must be 1..20 bytes (virtio-blk GET_ID)"));
      }
      disk.id = std::string(p);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("disk '", spec, "': unknown option '", p, "' (use ro, rw or id=NAME)"));
    }
  }
  return disk;
}

absl::StatusOr<SerialConfig> ParseSerialSpec(absl::string_view spec) {
  SerialConfig s;
  absl::string_view rest = spec;
  if (spec == "stdout") {
    s.kind = SerialKind::kStdout;
  } else if (spec == "none") {
    s.kind = SerialKind::kNone;
  } else if (absl::ConsumePrefix(&rest, "file:") && !rest.empty()) {
    s.kind = SerialKind::kFile;
    s.path = std::string(rest);
  } else if (absl::ConsumePrefix(&rest, "fd:")) {
    int fd;
    if (!absl::SimpleAtoi(rest, &fd) || fd < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("serial '", spec, "': fd:N needs a non-negative descriptor number"));
    }
    s.kind = SerialKind::kFd;
    s.fd = fd;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("serial '", spec, "': expected stdout, none, file:PATH or fd:N"));
  }
  return s;
}

absl::StatusOr<NetConfig> ParseNetSpec(absl::string_view spec) {
  NetConfig n;
  absl::string_view rest = spec;
  if (!absl::ConsumePrefix(&rest, "passt") || !(rest.empty() || rest[0] == ',')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--net '", spec, "': the backend must be 'passt' (passt[,mac=MAC][,egress=POLICY])"));
  }
  n.enabled = true;
  while (absl::ConsumePrefix(&rest, ",")) {
    if (absl::ConsumePrefix(&rest, "egress=")) {
      n.egress = std::string(rest);  // The rest: policies hold commas.
      rest = {};
      break;
    }
    const size_t comma = rest.find(',');
    absl::string_view item = rest.substr(0, comma);
    rest = comma == absl::string_view::npos ? absl::string_view() : rest.substr(comma);
    if (absl::ConsumePrefix(&item, "mac=")) {
      n.mac = std::string(item);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--net '", spec, "': unknown option '",
                                                     item, "' (mac=, egress=)"));
    }
  }
  if (!rest.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--net '", spec, "': trailing '", rest, "'"));
  }
  if (!n.mac.empty()) {
    SM_RETURN_IF_ERROR(base::Annotate(::supermachine::net::ParseMac(n.mac).status(), "--net"));
  }
  SM_RETURN_IF_ERROR(
      base::Annotate(::supermachine::net::ParseEgressPolicy(n.egress).status(), "--net"));
  return n;
}

absl::StatusOr<LaunchConfig> ParseLaunchConfigJson(absl::string_view text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("launch config: invalid JSON: ", e.what()));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError("launch config: top level must be a JSON object");
  }
  LaunchConfig c;
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      const nlohmann::json& v = it.value();
      if (key == "kernel") {
        c.kernel = v.get<std::string>();
      } else if (key == "cmdline") {
        c.cmdline = v.get<std::string>();
      } else if (key == "mem_mib") {
        c.mem_mib = v.get<uint32_t>();
      } else if (key == "vcpus") {
        c.vcpus = v.get<uint32_t>();
      } else if (key == "rng") {
        c.rng = v.get<bool>();
      } else if (key == "balloon") {
        c.balloon = v.get<bool>();
      } else if (key == "ksm") {
        c.ksm = v.get<bool>();
      } else if (key == "serial_max_bytes") {
        c.serial.max_bytes = v.get<uint64_t>();
      } else if (key == "pvh") {
        c.pvh = v.get<bool>();
      } else if (key == "vsock") {
        if (v.is_string()) {
          c.vsock.path = v.get<std::string>();
        } else if (v.is_object()) {
          for (auto vit = v.begin(); vit != v.end(); ++vit) {
            if (vit.key() == "path") {
              c.vsock.path = vit.value().get<std::string>();
            } else if (vit.key() == "cid") {
              c.vsock.guest_cid = vit.value().get<uint32_t>();
            } else {
              return absl::InvalidArgumentError(
                  absl::StrCat("launch config: unknown vsock key '", vit.key(), "'"));
            }
          }
        } else {
          return absl::InvalidArgumentError(
              "launch config: 'vsock' is \"PATH\" or {\"path\":..,\"cid\":..}");
        }
      } else if (key == "net") {
        if (v.is_string()) {
          SM_ASSIGN_OR_RETURN(c.net, ParseNetSpec(v.get<std::string>()));
        } else if (v.is_object()) {
          std::string spec = "passt";
          std::string egress;
          for (auto nit = v.begin(); nit != v.end(); ++nit) {
            if (nit.key() == "backend" && nit.value().get<std::string>() != "passt") {
              return absl::InvalidArgumentError("launch config: net backend must be \"passt\"");
            } else if (nit.key() == "mac") {
              absl::StrAppend(&spec, ",mac=", nit.value().get<std::string>());
            } else if (nit.key() == "egress") {
              egress = nit.value().get<std::string>();
            } else if (nit.key() != "backend") {
              return absl::InvalidArgumentError(
                  absl::StrCat("launch config: unknown net key '", nit.key(), "'"));
            }
          }
          absl::StrAppend(&spec, ",egress=", egress);
          SM_ASSIGN_OR_RETURN(c.net, ParseNetSpec(spec));
        } else {
          return absl::InvalidArgumentError(
              "launch config: 'net' is \"passt,...\" or {\"backend\":..,\"mac\":..,"
              "\"egress\":..}");
        }
      } else if (key == "serial") {
        const uint64_t max_bytes = c.serial.max_bytes;  // "serial_max_bytes" may come first
        SM_ASSIGN_OR_RETURN(c.serial, ParseSerialSpec(v.get<std::string>()));
        c.serial.max_bytes = max_bytes;
      } else if (key == "disks") {
        if (!v.is_array()) {
          return absl::InvalidArgumentError("launch config: 'disks' must be an array");
        }
        for (const nlohmann::json& d : v) {
          DiskConfig disk;
          if (d.is_string()) {
            SM_ASSIGN_OR_RETURN(disk, ParseDiskSpec(d.get<std::string>()));
          } else if (d.is_object()) {
            for (auto dit = d.begin(); dit != d.end(); ++dit) {
              if (dit.key() == "path") {
                disk.path = dit.value().get<std::string>();
              } else if (dit.key() == "read_only") {
                disk.read_only = dit.value().get<bool>();
              } else if (dit.key() == "id") {
                disk.id = dit.value().get<std::string>();
              } else {
                return absl::InvalidArgumentError(
                    absl::StrCat("launch config: unknown disk key '", dit.key(), "'"));
              }
            }
          } else {
            return absl::InvalidArgumentError(
                "launch config: each disk is \"PATH[,ro]\" or {\"path\":..,\"read_only\":..}");
          }
          c.disks.push_back(std::move(disk));
        }
      } else {
        return absl::InvalidArgumentError(absl::StrCat("launch config: unknown key '", key, "'"));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("launch config: wrong type: ", e.what()));
  }
  return c;
}

absl::StatusOr<CommandLine> ParseCommandLine(int argc, const char* const* argv) {
  CLI::App app{"supermachine-worker: runs one KVM microVM (see docs/worker.md)"};
  std::string config_file, kernel, cmdline, serial, vsock, net;
  uint32_t mem_mib = 0, vcpus = 0, vsock_cid = 0;
  uint64_t serial_max_bytes = 0;
  std::vector<std::string> disks, passt_args;
  bool no_rng = false, no_pvh = false, balloon = false, ksm = false;
  app.add_option("--config", config_file, "JSON launch config; flags given too override it");
  app.add_option("--kernel", kernel, "ELF vmlinux (PVH entry) or bzImage");
  app.add_option("--cmdline", cmdline,
                 absl::StrCat("kernel command line (default: \"", kDefaultCmdline,
                              "\"); virtio_mmio.device= entries are appended"));
  app.add_option("--mem-mib", mem_mib, "guest memory in MiB (default 256)");
  app.add_option("--vcpus", vcpus, "number of vCPUs (default 1)");
  app.add_option("--disk", disks, "PATH[,ro|,rw][,id=NAME]; repeat for more disks")
      ->take_all();
  app.add_option("--serial", serial, "stdout (default), none, file:PATH or fd:N");
  app.add_option("--serial-max-bytes", serial_max_bytes,
                 absl::StrCat("with file:PATH, rename PATH to PATH.1 (replacing it) and start "
                              "a new PATH before PATH would grow past N bytes; 0: unbounded "
                              "(default ", kDefaultSerialMaxBytes, ")"))
      ->type_name("N");
  app.add_option("--vsock", vsock,
                 "add a virtio-vsock device; host clients connect to the Unix socket PATH and "
                 "send \"CONNECT <port>\\n\" (reply \"OK <hostport>\\n\"); guest connections "
                 "to host port P go to the socket PATH_P")
      ->type_name("PATH");
  app.add_option("--vsock-cid", vsock_cid, "the guest's vsock CID (default 3)");
  app.add_option("--net", net,
                 "add a virtio-net device backed by a per-VM passt: "
                 "passt[,mac=MAC][,egress=POLICY] with POLICY allow_all, deny_private "
                 "(default), allowlist:CIDR,... or denylist:CIDR,... (docs/networking.md)")
      ->type_name("SPEC");
  app.add_option("--passt-arg", passt_args,
                 "one more option for passt (repeat; e.g. --passt-arg=--netns-only where passt "
                 "cannot create a user namespace)")
      ->type_name("ARG");
  app.add_flag("--no-rng", no_rng, "do not add a virtio-rng device");
  app.add_flag("--balloon", balloon,
               "add a virtio-balloon device with free page reporting: memory the guest frees "
               "goes back to the host about 2 s later (docs/balloon.md)");
  app.add_flag("--ksm", ksm,
               "mark guest RAM mergeable (MADV_MERGEABLE) so the kernel's KSM may share "
               "identical pages between VMs; only a restored VM's RAM can merge, and "
               "/sys/kernel/mm/ksm/run must be 1 (docs/memory.md)");
  std::string control_socket, restore_dir;
  app.add_option("--control", control_socket,
                 "Unix socket for line commands: pause, resume, snapshot DIR, exit "
                 "(docs/snapshot.md)")
      ->type_name("PATH");
  app.add_option("--restore", restore_dir,
                 "start from the snapshot in DIR instead of booting a kernel; disks are "
                 "re-opened from their saved paths unless --disk is given")
      ->type_name("DIR");
  app.add_flag("--no-pvh", no_pvh, "boot an ELF vmlinux through its 64-bit entry, not PVH");
  std::string kernel_sha256, agent_version;
  app.add_option("--kernel-sha256", kernel_sha256,
                 "the kernel file's SHA-256 for snapshots (default: hashed at the first "
                 "snapshot); with --restore, the snapshot must have been taken with it")
      ->type_name("HEX");
  app.add_option("--agent-version", agent_version,
                 "the guest agent's version, recorded in snapshots; with --restore, the "
                 "snapshot must have been taken with it")
      ->type_name("STRING");

  CommandLine out;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out.help = true;
    out.help_text = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(absl::StrCat(e.what(), " (see --help)"));
  }
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) {
      return base::ErrnoToStatus(errno, absl::StrCat("launch config '", config_file, "'"));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    absl::StatusOr<LaunchConfig> parsed = ParseLaunchConfigJson(ss.str());
    if (!parsed.ok()) {
      return base::Annotate(parsed.status(), config_file);
    }
    out.config = *std::move(parsed);
  }
  out.control_socket = control_socket;
  out.restore_dir = restore_dir;
  out.vcpus_given = app.count("--vcpus") > 0;
  LaunchConfig& c = out.config;
  if (!kernel.empty()) {
    c.kernel = kernel;
  }
  if (app.count("--cmdline") > 0) {
    c.cmdline = cmdline;
  }
  if (app.count("--mem-mib") > 0) {
    c.mem_mib = mem_mib;
  }
  if (app.count("--vcpus") > 0) {
    c.vcpus = vcpus;
  }
  for (const std::string& d : disks) {
    SM_ASSIGN_OR_RETURN(DiskConfig disk, ParseDiskSpec(d));
    c.disks.push_back(std::move(disk));
  }
  if (!serial.empty()) {
    const uint64_t max_bytes = c.serial.max_bytes;  // from --config, if it set one
    SM_ASSIGN_OR_RETURN(c.serial, ParseSerialSpec(serial));
    c.serial.max_bytes = max_bytes;
  }
  if (app.count("--serial-max-bytes") > 0) {
    c.serial.max_bytes = serial_max_bytes;
  }
  if (!vsock.empty()) {
    c.vsock.path = vsock;
  }
  if (app.count("--vsock-cid") > 0) {
    c.vsock.guest_cid = vsock_cid;
  }
  if (!net.empty()) {
    SM_ASSIGN_OR_RETURN(c.net, ParseNetSpec(net));
  }
  c.net.passt_args.insert(c.net.passt_args.end(), passt_args.begin(), passt_args.end());
  if (no_rng) {
    c.rng = false;
  }
  if (balloon) {
    c.balloon = true;
  }
  if (ksm) {
    c.ksm = true;
  }
  if (no_pvh) {
    c.pvh = false;
  }
  if (!kernel_sha256.empty()) {
    if (kernel_sha256.size() != 64 ||
        kernel_sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--kernel-sha256 '", kernel_sha256, "': expected 64 lowercase hex digits (sha256sum)"));
    }
    c.kernel_sha256 = kernel_sha256;
  }
  if (!agent_version.empty()) {
    c.agent_version = agent_version;
  }
  return out;
}

HostLimits QueryHostLimits() {
  HostLimits l;
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) {
    l.host_mem_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
  }
  return l;
}

absl::Status ValidateLaunchConfig(const LaunchConfig& c, const HostLimits& limits) {
  if (c.kernel.empty()) {
    return absl::InvalidArgumentError("no kernel given: pass --kernel PATH (vmlinux or bzImage)");
  }
  SM_RETURN_IF_ERROR(arch::ProbeKernel(c.kernel).status());
  if (c.mem_mib < kMinMemMib) {
    return absl::InvalidArgumentError(absl::StrCat("memory ", c.mem_mib, " MiB is too small: ",
                                                   "the minimum is ", kMinMemMib, " MiB"));
  }
  const uint64_t mem_bytes = static_cast<uint64_t>(c.mem_mib) << 20;
  if (limits.host_mem_bytes != 0 && mem_bytes >= limits.host_mem_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "memory ", c.mem_mib, " MiB is too large: the host has ", limits.host_mem_bytes >> 20,
        " MiB of RAM"));
  }
  const uint32_t max_vcpus =
      limits.max_vcpus != 0 ? std::min(limits.max_vcpus, arch::kMaxVcpus) : arch::kMaxVcpus;
  if (c.vcpus == 0 || c.vcpus > max_vcpus) {
    return absl::InvalidArgumentError(
        absl::StrCat(c.vcpus, " vCPUs: supported range is 1..", max_vcpus));
  }
  if (c.disks.size() > kMaxDisks) {
    return absl::InvalidArgumentError(
        absl::StrCat(c.disks.size(), " disks: at most ", kMaxDisks, " are supported"));
  }
  for (const DiskConfig& d : c.disks) {
    base::UniqueFd fd(open(d.path.c_str(), (d.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (!fd.valid()) {
      return base::ErrnoToStatus(errno, absl::StrCat("disk '", d.path, "' (",
                                                     d.read_only ? "read-only" : "read-write",
                                                     ")"));
    }
  }
  if (!c.vsock.path.empty() && c.vsock.path.size() > kMaxVsockPath) {
    return absl::InvalidArgumentError(
        absl::StrCat("vsock path '", c.vsock.path, "' is ", c.vsock.path.size(),
                     " bytes: at most ", kMaxVsockPath,
                     " fit a Unix socket address with the \"_<port>\" suffix"));
  }
  if (c.vsock.guest_cid < 3 || c.vsock.guest_cid == 0xffffffffu) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vsock CID ", c.vsock.guest_cid, ": must be 3..4294967294 (0-2 are reserved)"));
  }
  if (c.serial.kind == SerialKind::kFd && fcntl(c.serial.fd, F_GETFD) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("serial fd:", c.serial.fd, ": not an open file descriptor"));
  }
  return absl::OkStatus();
}

}  // namespace supermachine::vmm
