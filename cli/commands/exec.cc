// File: exec.cc
// `smctl exec [-i] [-t] VM -- CMD...`: runs CMD in a VM, streams its output, and exits with
// the guest command's exit status (128+signal when killed, as shells report it).
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands/commands.h"
#include "worker/base/unique_fd.h"

namespace supermachine::cli {
namespace {

struct ExecOptions {
  bool interactive = false;
  bool tty = false;
  uint32_t timeout_ms = 0;
  std::string vm;
  std::vector<std::string> cmd;
};

using Stream = grpc::ClientReaderWriter<v1::ExecRequest, v1::ExecResponse>;

// Copies our stdin to the stream until EOF or until `stop_fd` becomes readable (the call
// ended), so the thread never outlives the call blocked in read().
void PumpStdin(Stream* stream, int stop_fd) {
  char buf[16 * 1024];
  while (true) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 || fds[1].revents != 0) {
      return;
    }
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n <= 0) {
      v1::ExecRequest eof;
      eof.set_stdin_eof(true);
      stream->Write(eof);
      stream->WritesDone();
      return;
    }
    v1::ExecRequest chunk;
    chunk.set_stdin(std::string(buf, static_cast<size_t>(n)));
    if (!stream->Write(chunk)) {
      return;
    }
  }
}

int Exec(const ExecOptions& o, const GlobalOptions& globals) {
  std::unique_ptr<Client> client;
  grpc::Status st = Client::Connect(globals, &client);
  if (!st.ok()) {
    return ReportError(st);
  }
  return ExecInVm(*client, {.vm = o.vm,
                            .argv = o.cmd,
                            .interactive = o.interactive,
                            .tty = o.tty,
                            .timeout_ms = o.timeout_ms});
}

}  // namespace

int ExecInVm(Client& client, const ExecParams& p) {
  v1::ExecRequest start;
  v1::ExecStart* s = start.mutable_start();
  s->set_vm_id(p.vm);
  for (const std::string& a : p.argv) {
    s->add_argv(a);
  }
  for (const std::string& e : p.env) {
    s->add_env(e);
  }
  s->set_tty(p.tty);
  s->set_timeout_ms(p.timeout_ms);
  if (p.tty) {
    winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
      s->set_rows(ws.ws_row);
      s->set_cols(ws.ws_col);
    }
  }
  // The guest command's own deadline is --timeout-ms (explicit, none by default); the RPC has
  // no client deadline so a long command is not cut by smctl.
  auto ctx = client.StreamContext();
  std::unique_ptr<Stream> stream = client.stub().Exec(ctx.get());
  stream->Write(start);
  int stop_pipe[2] = {-1, -1};
  std::thread pump;
  base::UniqueFd stop_read;
  base::UniqueFd stop_write;
  bool writes_done = false;
  if (p.interactive && ::pipe2(stop_pipe, O_CLOEXEC) == 0) {
    stop_read.Reset(stop_pipe[0]);
    stop_write.Reset(stop_pipe[1]);
    pump = std::thread(PumpStdin, stream.get(), stop_read.get());
  } else {
    stream->WritesDone();
    writes_done = true;
  }
  // Once the exit arrived, our side closes too (the daemon waits for that to end the call).
  auto stop_input = [&] {
    if (pump.joinable()) {
      char b = 0;
      (void)!::write(stop_write.get(), &b, 1);
      pump.join();
    }
    if (!writes_done) {
      stream->WritesDone();
      writes_done = true;
    }
  };
  int exit_code = 0;
  v1::ExecResponse resp;
  while (stream->Read(&resp)) {
    if (resp.has_exit()) {
      const v1::ExecExit& e = resp.exit();
      exit_code = e.signal() != 0 ? 128 + e.signal() : e.exit_code();
      if (e.timed_out()) {
        std::fprintf(stderr, "smctl: command timed out after %u ms\n", p.timeout_ms);
      }
      if (e.output_truncated()) {
        std::fprintf(stderr, "smctl: output was truncated by the daemon\n");
      }
      std::fflush(stdout);
      stop_input();
    } else {
      const std::string& data = resp.has_stdout() ? resp.stdout() : resp.stderr();
      std::fwrite(data.data(), 1, data.size(), resp.has_stdout() ? stdout : stderr);
    }
  }
  stop_input();
  grpc::Status st = client.Explain(stream->Finish());
  return st.ok() ? exit_code : ReportError(st);
}

Verb AddExecCommand(CLI::App& root, const GlobalOptions& globals) {
  auto o = std::make_shared<ExecOptions>();
  CLI::App* app = root.add_subcommand("exec", "Run a command in a VM; exits with its status");
  app->add_flag("-i,--interactive", o->interactive, "Send stdin to the command");
  app->add_flag("-t,--tty", o->tty, "Give the command a terminal");
  app->add_option("--timeout-ms", o->timeout_ms, "Kill the command after this long (0: never)");
  app->add_option("VM", o->vm, "VM id or name")->required();
  app->add_option("CMD", o->cmd, "Command and arguments (after --)")->required();
  return {app, [o, &globals]() { return Exec(*o, globals); }};
}

}  // namespace supermachine::cli
