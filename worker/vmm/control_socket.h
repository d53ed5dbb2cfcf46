// File: control_socket.h
// The worker's control socket (`--control PATH`): a Unix stream socket speaking one command per
// line, one reply line per command ("OK ..." or "ERR <message>"). The daemon (or a person with
// socat) pauses, snapshots and resumes the VM through it; docs/snapshot.md lists the commands.
//
// The socket is served from the VM's event loop: ControlSocket keeps its own epoll set, whose
// fd the loop watches, and runs the handler on the loop's thread. That thread is also the one
// that processes device queues, so while a command runs no device touches guest memory.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/base/unique_fd.h"

namespace supermachine::vmm {

enum class ControlVerb { kPause, kResume, kSnapshot, kExit, kStats, kBalloon, kBalloonTarget };

struct ControlCommand {
  ControlVerb verb = ControlVerb::kPause;
  std::string argument;  // kSnapshot: the directory.
  uint32_t pages = 0;    // kBalloonTarget: the target in 4 KiB pages (0: deflate fully).
};

// "pause", "resume", "snapshot DIR", "exit", "stats", "balloon", "balloon-target PAGES"
// (surrounding blanks ignored; PAGES is a decimal count of 4 KiB pages that fits the device's
// 32-bit num_pages; the bound by guest RAM is the VM's). Errors are the text for the "ERR"
// reply.
absl::StatusOr<ControlCommand> ParseControlCommand(absl::string_view line);

class ControlSocket {
 public:
  // Gets one command line (without the newline), returns the reply line (without newline).
  using Handler = std::function<std::string(absl::string_view line)>;

  // A longer line is refused (and the client dropped): commands are short.
  static constexpr size_t kMaxLine = 4096;
  static constexpr size_t kMaxClients = 8;

  // Binds and listens on `path` (an existing socket file there is replaced: the worker owns
  // the path for its lifetime); unlinks it on destruction.
  static absl::StatusOr<std::unique_ptr<ControlSocket>> Listen(const std::string& path,
                                                               Handler handler);
  ~ControlSocket();
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;

  // Readable (EPOLLIN) when Process has work; for the event loop.
  int fd() const { return epoll_.get(); }
  // Accepts clients, reads what they sent and answers every complete line. Never blocks.
  void Process();

 private:
  struct Client {
    base::UniqueFd fd;
    std::string pending;
  };
  ControlSocket(std::string path, Handler handler) : path_(std::move(path)), handler_(std::move(handler)) {}
  void Accept();
  // False when the client is gone (EOF, error, protocol violation).
  bool Serve(Client& client);

  std::string path_;
  Handler handler_;
  base::UniqueFd epoll_;
  base::UniqueFd listen_;
  std::map<int, Client> clients_;
};

}  // namespace supermachine::vmm
