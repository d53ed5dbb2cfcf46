// File: run.cc
// `smctl run [-d] [-p HOST:GUEST]... [-e K=V]... [--name N] IMAGE [-- CMD...]`: bake IMAGE if
// needed (with CMD as its command), acquire a VM, then stream its logs unless detached.
// Each step is the daemon's; smctl prints the daemon's message when a step is refused.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/request_flags.h"

namespace supermachine::cli {
namespace {

struct RunOptions {
  bool detach = false;
  std::vector<std::string> ports;
  std::vector<std::string> env;
  std::string name;
  std::string image;
  std::vector<std::string> cmd;
};

// Bakes IMAGE with CMD overriding its command; returns the snapshot's name.
grpc::Status BakeForRun(Client& client, const RunOptions& o, std::string* snapshot) {
  v1::BakeRequest req;
  req.set_image(o.image);
  for (const std::string& a : o.cmd) {
    req.add_cmd(a);
  }
  auto ctx = client.StreamContext();
  auto reader = client.stub().Bake(ctx.get(), req);
  v1::BakeProgress progress;
  while (reader->Read(&progress)) {
    if (progress.has_result()) {
      *snapshot = progress.result().name();
    } else if (!progress.step().empty()) {
      std::fprintf(stderr, "bake: %s\n", progress.step().c_str());
    }
  }
  return client.Explain(reader->Finish());
}

int Run(const RunOptions& o, const GlobalOptions& globals) {
  v1::AcquireRequest req;
  for (const std::string& p : o.ports) {
    grpc::Status st = ParsePortFlag(p, req.add_ports());
    if (!st.ok()) {
      return ReportError(st);
    }
  }
  for (const std::string& e : o.env) {
    grpc::Status st = CheckEnvFlag(e);
    if (!st.ok()) {
      return ReportError(st);
    }
    req.add_env(e);
  }
  req.set_name(o.name);
  std::unique_ptr<Client> client;
  grpc::Status st = Client::Connect(globals, &client);
  if (!st.ok()) {
    return ReportError(st);
  }
  std::string snapshot = o.image;
  if (!o.cmd.empty()) {
    // The command is part of what a snapshot captures (the workload starts before the
    // snapshot), so a different CMD means a different bake.
    st = BakeForRun(*client, o, &snapshot);
    if (!st.ok()) {
      return ReportError(st);
    }
  }
  req.set_snapshot(snapshot);
  v1::AcquireResponse resp;
  // Acquire may bake first; that is not bounded by smctl's short RPC timeout.
  st = client->Explain(client->stub().Acquire(client->StreamContext().get(), req, &resp));
  if (!st.ok()) {
    return ReportError(st);
  }
  std::printf("%s\n", resp.vm().id().c_str());
  if (o.detach) {
    return 0;
  }
  return StreamLogs(*client, resp.vm().id(), /*follow=*/true);
}

}  // namespace

Verb AddRunCommand(CLI::App& root, const GlobalOptions& globals) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* app = root.add_subcommand(
      "run", "Bake IMAGE if needed, acquire a VM from it, forward ports, stream its logs");
  app->add_flag("-d,--detach", o->detach, "Print the VM id and return instead of streaming logs");
  app->add_option("-p,--publish", o->ports, "Forward HOST_PORT:GUEST_PORT (or ADDR:HOST:GUEST); repeatable")
      ->allow_extra_args(false);
  app->add_option("-e,--env", o->env, "Set KEY=VALUE in the workload's environment; repeatable")
      ->allow_extra_args(false);
  app->add_option("--name", o->name, "Name for the VM");
  app->add_option("IMAGE", o->image, "Image ref or snapshot name")->required();
  app->add_option("CMD", o->cmd, "Command overriding the image's (after --)");
  return {app, [o, &globals]() { return Run(*o, globals); }};
}

}  // namespace supermachine::cli
