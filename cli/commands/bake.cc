// File: bake.cc
// `smctl bake IMAGE [flags] [-- CMD...]`: bakes IMAGE into a snapshot, printing progress.
// Flags mirror BakeRequest field by field.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/render.h"
#include "cli/request_flags.h"

namespace supermachine::cli {
namespace {

struct BakeOptions {
  std::string image;
  std::string name;
  uint32_t guest_port = 0;
  uint32_t memory_mib = 0;
  uint32_t vcpus = 0;
  std::string pull = "missing";
  std::vector<std::string> cmd;
  std::vector<std::string> entrypoint;
  std::string workdir;
  std::string user;
  std::vector<std::string> env;
  std::string hostname;
  std::vector<std::string> files;
  std::vector<std::string> volumes;
  std::string restart;
  std::string readiness;
  std::string egress;
  bool json = false;
};

int Bake(BakeOptions& o, const GlobalOptions& globals) {
  v1::BakeRequest req;
  req.set_image(o.image);
  req.set_name(o.name);
  req.set_guest_port(o.guest_port);
  req.set_memory_mib(o.memory_mib);
  req.set_vcpus(o.vcpus);
  req.set_pull_policy(o.pull == "always"  ? v1::PULL_POLICY_ALWAYS
                      : o.pull == "never" ? v1::PULL_POLICY_NEVER
                                          : v1::PULL_POLICY_MISSING);
  for (const auto& a : o.cmd) {
    req.add_cmd(a);
  }
  for (const auto& a : o.entrypoint) {
    req.add_entrypoint(a);
  }
  req.set_workdir(o.workdir);
  req.set_user(o.user);
  for (const auto& e : o.env) {
    grpc::Status st = CheckEnvFlag(e);
    if (!st.ok()) {
      return ReportError(st);
    }
    req.add_env(e);
  }
  req.set_hostname(o.hostname);
  for (const auto& f : o.files) {
    req.add_extra_files(f);
  }
  for (const auto& v : o.volumes) {
    req.add_volumes(v);
  }
  req.set_restart_policy(o.restart);
  req.set_readiness(o.readiness);
  req.set_egress_policy(o.egress);

  std::unique_ptr<Client> client;
  grpc::Status st = Client::Connect(globals, &client);
  if (!st.ok()) {
    return ReportError(st);
  }
  // A bake pulls and boots: its length is the image's, not smctl's RPC timeout.
  auto ctx = client->StreamContext();
  auto reader = client->stub().Bake(ctx.get(), req);
  v1::BakeProgress progress;
  while (reader->Read(&progress)) {
    if (progress.has_result()) {
      std::fputs(o.json ? ToJson(progress.result()).c_str()
                        : (progress.result().name() + "\n").c_str(),
                 stdout);
    } else if (progress.has_pull()) {
      std::fprintf(stderr, "pull %s: %s / %s\n", progress.pull().digest().c_str(),
                   HumanSize(progress.pull().bytes_done()).c_str(),
                   HumanSize(progress.pull().bytes_total()).c_str());
    } else {
      std::fprintf(stderr, "%s\n", progress.step().c_str());
    }
  }
  st = client->Explain(reader->Finish());
  return st.ok() ? 0 : ReportError(st);
}

}  // namespace

Verb AddBakeCommand(CLI::App& root, const GlobalOptions& globals) {
  auto o = std::make_shared<BakeOptions>();
  CLI::App* app = root.add_subcommand("bake", "Bake IMAGE into a snapshot");
  app->add_option("IMAGE", o->image,
                  "Registry ref, oci-layout:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE")
      ->required();
  app->add_option("CMD", o->cmd, "Command overriding the image's Cmd (after --)");
  app->add_option("--name", o->name, "Snapshot name (default: from the image ref)");
  app->add_option("--port", o->guest_port, "Guest TCP port whose listener means ready");
  app->add_option("--memory", o->memory_mib, "Guest memory in MiB (default 256)");
  app->add_option("--vcpus", o->vcpus, "vCPUs (default 1)");
  app->add_option("--pull", o->pull, "Pull policy")->check(CLI::IsMember({"missing", "always", "never"}));
  app->add_option("--entrypoint", o->entrypoint, "Entrypoint override (clears Cmd); repeatable")
      ->allow_extra_args(false);
  app->add_option("-w,--workdir", o->workdir, "Working directory");
  app->add_option("-u,--user", o->user, "User[:group] the workload runs as");
  app->add_option("-e,--env", o->env, "KEY=VALUE added to the environment; repeatable")
      ->allow_extra_args(false);
  app->add_option("--hostname", o->hostname, "Guest hostname");
  app->add_option("--file", o->files, "HOST_PATH:GUEST_PATH copied into the snapshot; repeatable")
      ->allow_extra_args(false);
  app->add_option("-v,--volume", o->volumes, "NAME:GUEST_PATH[:SIZE]; repeatable")
      ->allow_extra_args(false);
  app->add_option("--restart", o->restart, "no | on-failure[:N] | always");
  app->add_option("--readiness", o->readiness, "listener | exit | parked | after=<ms>");
  app->add_option("--egress", o->egress, "allow_all | deny_private | allowlist:... | denylist:...");
  app->add_flag("--json", o->json, "Print the resulting Snapshot as JSON");
  return {app, [o, &globals]() { return Bake(*o, globals); }};
}

}  // namespace supermachine::cli
