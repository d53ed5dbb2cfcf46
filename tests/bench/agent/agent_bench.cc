// File: agent_bench.cc
// Agent benchmark (issue 5), run inside ONE lab run (tests/bench/agent/README.md): boots a
// guest with the agent and a busybox layer, then measures, each against a peer in the same
// run, machine and rootfs:
//   exec round trip of `true`: AgentClient::RunCommand in process, and the `sm-agent exec`
//     command, vs `crun exec` into a running crun container of the same busybox tree;
//   stream throughput: host -> guest through the agent (exec stdin into `wc -c`, and
//     connect-through to a guest `nc` sink) vs the same bytes over loopback TCP on the host.
// Prints a table and JSON (median, MAD, min, max, p99). Never asserts on numbers.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "tests/lab/agent/agent_vm.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace supermachine::agent::bench {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Stats {
  double median = 0, mad = 0, min = 0, max = 0, p99 = 0;
  std::vector<double> values;
};

Stats Summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) {
    return s;
  }
  std::sort(v.begin(), v.end());
  auto median = [](const std::vector<double>& x) {
    size_t n = x.size();
    return n % 2 == 1 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
  };
  s.median = median(v);
  std::vector<double> dev;
  dev.reserve(v.size());
  for (double x : v) {
    dev.push_back(std::fabs(x - s.median));
  }
  std::sort(dev.begin(), dev.end());
  s.mad = median(dev);
  s.min = v.front();
  s.max = v.back();
  s.p99 = v[std::min(v.size() - 1, static_cast<size_t>(std::ceil(0.99 * v.size())) - 1)];
  s.values = std::move(v);
  return s;
}

json ToJson(const Stats& s) {
  return {{"median", s.median}, {"mad", s.mad}, {"min", s.min}, {"max", s.max},
          {"p99", s.p99},       {"n", s.values.size()}, {"values", s.values}};
}

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "agent_bench: %s\n", msg.c_str());
  std::exit(1);
}

// Runs argv to completion, output discarded; its exit status.
base::ExitStatus RunQuiet(const std::vector<std::string>& argv, int out_fd) {
  auto child = base::ChildProcess::Spawn({.argv = argv, .stdout_fd = out_fd, .stderr_fd = out_fd});
  if (!child.ok()) {
    Die(child.status().ToString());
  }
  auto st = child->WaitFor(absl::Seconds(120));
  if (!st.ok()) {
    Die(absl::StrCat(argv[0], ": ", st.status().ToString()));
  }
  return *st;
}

// Milliseconds per call of `fn` over `runs` runs (after `warmup`).
Stats TimeMs(int runs, int warmup, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) {
    fn();
  }
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    absl::Time t0 = absl::Now();
    fn();
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  return Summarize(ms);
}

// ---- crun peer: a container of the same busybox tree, kept running, `crun exec true` ----
class CrunContainer {
 public:
  CrunContainer(const std::string& dir, const std::string& busybox, int log_fd)
      : root_(dir + "/crun-state"), bundle_(dir + "/bundle"), log_fd_(log_fd) {
    fs::create_directories(root_);
    fs::create_directories(bundle_);
    auto st = lab::WriteBusyboxTree(bundle_ + "/rootfs", busybox);
    if (!st.ok()) {
      Die(st.ToString());
    }
    // `crun spec` writes crun's default config.json; we only change the process.
    auto spec = base::ChildProcess::Spawn({.argv = {"sh", "-c", "cd '" + bundle_ +
                                                                    "' && rm -f config.json && "
                                                                    "crun spec"}});
    if (!spec.ok() || !spec->Wait().ok()) {
      Die("crun spec failed (is crun installed?)");
    }
    std::ifstream in(bundle_ + "/config.json");
    json config = json::parse(in);
    config["process"]["args"] = {"/bin/sleep", "1000000"};
    config["process"]["terminal"] = false;
    config["process"]["env"] = {"PATH=/bin:/usr/bin:/sbin:/usr/sbin"};
    std::ofstream(bundle_ + "/config.json") << config.dump(2);
    base::ExitStatus run =
        RunQuiet({"crun", "--root", root_, "run", "--detach", "--bundle", bundle_, kName}, log_fd_);
    if (!run.success()) {
      Die("crun run --detach failed: " + run.ToString() + " (see the log in " + dir + ")");
    }
  }
  ~CrunContainer() { RunQuiet({"crun", "--root", root_, "delete", "--force", kName}, log_fd_); }

  std::vector<std::string> ExecArgv(const std::string& cmd) const {
    return {"crun", "--root", root_, "exec", kName, cmd};
  }

 private:
  static constexpr const char* kName = "sm-agent-bench";
  std::string root_;
  std::string bundle_;
  int log_fd_;
};

// ---- throughput ----
constexpr size_t kBlock = 1 << 20;

// Writes `mib` MiB to `fd`, half-closes, then reads the sink's byte count back (`wc -c`).
// Returns MiB/s, or dies if the sink counted a different number of bytes.
double PumpAndCount(int fd, size_t mib) {
  const std::string block(kBlock, 'x');
  absl::Time t0 = absl::Now();
  for (size_t i = 0; i < mib; ++i) {
    size_t off = 0;
    while (off < block.size()) {
      ssize_t n = write(fd, block.data() + off, block.size() - off);
      if (n <= 0) {
        Die("write to the sink failed");
      }
      off += static_cast<size_t>(n);
    }
  }
  shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    reply.append(buf, static_cast<size_t>(n));
  }
  double s = absl::ToDoubleSeconds(absl::Now() - t0);
  uint64_t counted = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(reply), &counted) || counted != mib * kBlock) {
    Die(absl::StrCat("sink counted '", reply, "', expected ", mib * kBlock));
  }
  return static_cast<double>(mib) / s;
}

// Host loopback TCP peer: a thread accepts one connection, counts bytes, replies the count.
double LoopbackTcpMiBps(size_t mib) {
  base::UniqueFd lfd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(lfd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(lfd.get(), 1) != 0 ||
      getsockname(lfd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("loopback listen failed");
  }
  std::thread sink([&] {
    base::UniqueFd c(accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    std::string buf(kBlock, '\0');
    uint64_t total = 0;
    ssize_t n;
    while ((n = read(c.get(), buf.data(), buf.size())) > 0) {
      total += static_cast<uint64_t>(n);
    }
    std::string reply = absl::StrCat(total, "\n");
    (void)!write(c.get(), reply.data(), reply.size());
  });
  base::UniqueFd cfd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (connect(cfd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die("loopback connect failed");
  }
  double r = PumpAndCount(cfd.get(), mib);
  sink.join();
  return r;
}

json Row(const std::string& bench, const std::string& ours_name, const std::string& peer_name,
         const std::string& unit, const Stats& ours, const Stats& peer) {
  double ratio = peer.median > 0 ? ours.median / peer.median : 0;
  std::printf("%-30s %-28s %-18s %10.2f ±%-7.2f %9.2f %10.2f ±%-7.2f %9.2f %-6s %7.2fx\n",
              bench.c_str(), ours_name.c_str(), peer_name.c_str(), ours.median, ours.mad,
              ours.p99, peer.median, peer.mad, peer.p99, unit.c_str(), ratio);
  return {{"bench", bench}, {"ours", ours_name}, {"peer", peer_name}, {"unit", unit},
          {"ours_stats", ToJson(ours)}, {"peer_stats", ToJson(peer)}, {"ratio", ratio}};
}

int Main(int argc, char** argv) {
  CLI::App app{"Agent benchmark: exec round trip vs crun exec, stream throughput vs loopback "
               "TCP; run inside one lab run (tests/bench/agent/README.md)"};
  int runs = 200;
  int tput_runs = 5;
  size_t tput_mib = 64;
  std::string json_out;
  std::string work = absl::StrCat(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
                                  "/sm-agent-bench-", getpid());
  app.add_option("--runs", runs, "exec round trips per subject")->capture_default_str();
  app.add_option("--tput-runs", tput_runs, "throughput runs per subject")->capture_default_str();
  app.add_option("--tput-mib", tput_mib, "MiB per throughput run")->capture_default_str();
  app.add_option("--json", json_out, "also write the JSON here");
  CLI11_PARSE(app, argc, argv);

  std::string kernel_dir = lab::KernelDir(SM_SOURCE_DIR);
  if (kernel_dir.empty()) {
    Die("guest kernel not built: run kernel/build.sh or set SM_KERNEL_DIR");
  }
  fs::create_directories(work);
  base::UniqueFd log(open((work + "/peer.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                          0644));
  auto vm = lab::AgentVm::Boot({.work_dir = work,
                                .worker_bin = SM_WORKER_BIN,
                                .agent_bin = SM_GUEST_AGENT_BIN,
                                .kernel = kernel_dir + "/vmlinux"});
  if (!vm.ok()) {
    Die(vm.status().ToString());
  }
  const AgentClient& client = (*vm)->client();
  auto in = [](absl::Duration d) { return absl::Now() + d; };
  double load[3] = {};
  getloadavg(load, 3);
  json report = {{"loadavg_start", {load[0], load[1], load[2]}}, {"rows", json::array()}};
  std::printf("%-30s %-28s %-18s %19s %9s %19s %9s %-6s %8s\n", "bench", "ours", "peer",
              "ours median ±MAD", "ours p99", "peer median ±MAD", "peer p99", "unit",
              "ratio");

  // Exec round trip of `true`.
  auto exec_inproc = TimeMs(runs, 5, [&] {
    auto r = client.RunCommand({.argv = {"true"}}, "", in(absl::Seconds(60)));
    if (!r.ok() || !r->exit.success()) {
      Die("exec true: " + (r.ok() ? r->exit.ToString() : r.status().ToString()));
    }
  });
  auto exec_cli = TimeMs(runs, 5, [&] {
    auto st = RunQuiet({SM_AGENT_TOOL_BIN, "--socket", (*vm)->vsock_path(), "exec", "--", "true"},
                       log.get());
    if (!st.success()) {
      Die("sm-agent exec true: " + st.ToString());
    }
  });
  Stats crun_exec;
  {
    CrunContainer ctr(work, "/bin/busybox", log.get());
    crun_exec = TimeMs(runs, 5, [&] {
      auto st = RunQuiet(ctr.ExecArgv("true"), log.get());
      if (!st.success()) {
        Die("crun exec true: " + st.ToString());
      }
    });
  }
  report["rows"].push_back(Row("exec `true` round trip", "AgentClient (in process)",
                               "crun exec", "ms", exec_inproc, crun_exec));
  report["rows"].push_back(
      Row("exec `true` round trip", "sm-agent exec (a process)", "crun exec", "ms", exec_cli,
          crun_exec));

  // Throughput: the same bytes, counted by the receiver.
  std::vector<double> exec_stream, connect_stream, loopback;
  const std::string payload(tput_mib * kBlock, 'x');
  auto guest_sink = client.StartExec(
      {.argv = {"sh", "-c", "while true; do nc -l -p 9000 -e wc -c; done"}}, in(absl::Seconds(60)));
  if (!guest_sink.ok()) {
    Die(guest_sink.status().ToString());
  }
  if (auto w = client.WaitReady(ReadyCondition::ListenerPort(9000), in(absl::Seconds(120)));
      !w.ok()) {
    Die(w.status().ToString());
  }
  for (int i = 0; i < tput_runs; ++i) {
    absl::Time t0 = absl::Now();
    auto r = client.RunCommand({.argv = {"wc", "-c"}, .attach_stdin = true}, payload,
                               in(absl::Seconds(600)));
    double s = absl::ToDoubleSeconds(absl::Now() - t0);
    if (!r.ok() || absl::StripAsciiWhitespace(r->stdout_data) != std::to_string(payload.size())) {
      Die("exec wc -c: " + (r.ok() ? r->stdout_data : r.status().ToString()));
    }
    exec_stream.push_back(static_cast<double>(tput_mib) / s);

    // The sink restarts between connections; wait until it listens again.
    if (auto w = client.WaitReady(ReadyCondition::ListenerPort(9000), in(absl::Seconds(120)));
        !w.ok()) {
      Die(w.status().ToString());
    }
    auto fd = client.Connect(9000, in(absl::Seconds(60)));
    if (!fd.ok()) {
      Die(fd.status().ToString());
    }
    connect_stream.push_back(PumpAndCount(fd->get(), tput_mib));
    loopback.push_back(LoopbackTcpMiBps(tput_mib));
  }
  (void)(*guest_sink)->Signal(SIGKILL, in(absl::Seconds(10)));
  report["rows"].push_back(Row("host->guest stream throughput", "exec stdin -> wc -c",
                               "host loopback TCP", "MiB/s", Summarize(exec_stream),
                               Summarize(loopback)));
  report["rows"].push_back(Row("host->guest stream throughput", "connect -> guest nc -> wc -c",
                               "host loopback TCP", "MiB/s", Summarize(connect_stream),
                               Summarize(loopback)));

  auto down = (*vm)->Shutdown(absl::Seconds(60));
  getloadavg(load, 3);
  report["loadavg_end"] = {load[0], load[1], load[2]};
  report["runs"] = runs;
  report["tput_mib"] = tput_mib;
  report["vm_shutdown"] = down.ok() ? down->ToString() : down.status().ToString();
  std::printf("load average at end %.2f %.2f %.2f; lab: %s\n", load[0], load[1], load[2],
              getenv("SM_LAB") ? "yes" : "no");
  std::printf("%s\n", report.dump(2).c_str());
  if (!json_out.empty()) {
    std::ofstream(json_out) << report.dump(2) << "\n";
  }
  fs::remove_all(work);
  return 0;
}

}  // namespace
}  // namespace supermachine::agent::bench

int main(int argc, char** argv) { return supermachine::agent::bench::Main(argc, argv); }
