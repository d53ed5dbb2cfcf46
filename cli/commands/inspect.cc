// File: inspect.cc
// `smctl inspect VM [--json]`: one running VM with its network — MAC, the egress policy its
// worker enforces (and whether the Acquire overrode the snapshot's), traffic and drop counters
// read from the worker at call time.
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands/commands.h"
#include "cli/render.h"

namespace supermachine::cli {

std::string InspectVmText(const v1::InspectVMResponse& resp) {
  const v1::VM& vm = resp.vm();
  const v1::VMNetwork& net = resp.network();
  std::ostringstream out;
  out << "ID:        " << vm.id() << "\n";
  if (!vm.name().empty()) {
    out << "Name:      " << vm.name() << "\n";
  }
  out << "Snapshot:  " << vm.snapshot() << "\n"
      << "Worker:    pid " << vm.worker_pid() << "\n";
  for (const v1::PortForward& p : vm.ports()) {
    out << "Port:      " << p.host_address() << ":" << p.host_port() << " -> guest "
        << p.guest_port() << "\n";
  }
  // Supervision (docs/supervision.md), shown only for supervised or restarted VMs.
  if (!vm.restart_policy().empty() && vm.restart_policy() != "no") {
    out << "Restart:   " << vm.restart_policy() << ", " << vm.restart_count()
        << (vm.restart_count() == 1 ? " restart" : " restarts")
        << (vm.restarting() ? " (restart scheduled)" : "") << "\n";
  } else if (vm.restart_count() != 0) {
    out << "Restart:   " << vm.restart_count() << " restarts\n";
  }
  if (vm.has_last_exit()) {
    out << "Last exit: " << LastExitText(vm.last_exit()) << "\n";
  }
  switch (vm.health()) {
    case v1::HEALTH_STATUS_STARTING: out << "Health:    starting\n"; break;
    case v1::HEALTH_STATUS_HEALTHY: out << "Health:    healthy\n"; break;
    case v1::HEALTH_STATUS_UNHEALTHY: out << "Health:    unhealthy\n"; break;
    default: break;
  }
  if (!resp.network_error().empty()) {
    out << "Network:   unknown (" << resp.network_error() << ")\n";
    if (!net.egress_policy_override().empty()) {
      out << "Egress:    " << net.egress_policy_override() << " (acquire override)\n";
    }
    return out.str();
  }
  if (!net.enabled()) {
    out << "Network:   none (the snapshot has no network device)\n";
    return out.str();
  }
  out << "Network:   virtio-net via passt, MAC " << net.mac() << "\n"
      << "Egress:    " << net.egress_policy()
      << (net.egress_policy_override().empty() ? " (the snapshot's)" : " (acquire override)")
      << "\n"
      << "Sent:      " << net.tx_packets() << " packets, " << net.tx_bytes() << " bytes\n"
      << "Received:  " << net.rx_packets() << " packets, " << net.rx_bytes() << " bytes\n"
      << "Dropped:   " << net.dropped_policy() << " by egress policy, " << net.dropped_malformed()
      << " malformed, " << net.dropped_rx() << " inbound without a guest buffer\n";
  if (net.reset_stale() != 0) {
    out << "Reset:     " << net.reset_stale() << " connections from before the restore\n";
  }
  return out.str();
}

Verb AddInspectCommand(CLI::App& root, const GlobalOptions& globals) {
  struct Options {
    std::string vm;
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "inspect", "Show a running VM: its network, egress policy and traffic counters");
  app->add_option("vm", opts->vm, "VM id or name (see smctl ps)")->required();
  app->add_flag("--json", opts->json, "Print the InspectVMResponse as JSON");
  return {app, [opts, &globals]() {
            std::unique_ptr<Client> client;
            grpc::Status st = Client::Connect(globals, &client);
            v1::InspectVMRequest req;
            req.set_vm_id(opts->vm);
            v1::InspectVMResponse resp;
            if (st.ok()) {
              st = client->Explain(
                  client->stub().InspectVM(client->UnaryContext().get(), req, &resp));
            }
            if (!st.ok()) {
              return ReportError(st);
            }
            std::fputs((opts->json ? ToJson(resp) : InspectVmText(resp)).c_str(), stdout);
            return 0;
          }};
}

}  // namespace supermachine::cli
