// File: logs.cc
// `smctl logs [-f] VM`: the VM's workload output and console; -f keeps following.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands/commands.h"

namespace supermachine::cli {

Verb AddLogsCommand(CLI::App& root, const GlobalOptions& globals) {
  struct Options {
    bool follow = false;
    std::string vm;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("logs", "Show a VM's output");
  app->add_flag("-f,--follow", o->follow,
                "Keep streaming new output, across the VM's supervised restarts, until it ends");
  app->add_option("VM", o->vm, "VM id or name")->required();
  return {app, [o, &globals]() {
            std::unique_ptr<Client> client;
            grpc::Status st = Client::Connect(globals, &client);
            if (!st.ok()) {
              return ReportError(st);
            }
            return StreamLogs(*client, o->vm, o->follow);
          }};
}

int StreamLogs(Client& client, const std::string& vm_id, bool follow) {
  v1::LogsRequest req;
  req.set_vm_id(vm_id);
  req.set_follow(follow);
  // Following is unbounded; a one-shot read gets the short RPC deadline.
  auto ctx = follow ? client.StreamContext() : client.UnaryContext();
  auto reader = client.stub().Logs(ctx.get(), req);
  v1::LogChunk chunk;
  while (reader->Read(&chunk)) {
    std::fwrite(chunk.data().data(), 1, chunk.data().size(), stdout);
    std::fflush(stdout);
  }
  grpc::Status st = client.Explain(reader->Finish());
  return st.ok() ? 0 : ReportError(st);
}

}  // namespace supermachine::cli
