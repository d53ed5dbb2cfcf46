// File: worker_control.cc
#include "tests/support/worker_control.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace supermachine::test_support {

std::vector<std::string> WorkerCommands(const std::string& control_socket,
                                        const std::vector<std::string>& lines,
                                        int connect_wait_ms) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (control_socket.size() >= sizeof(addr.sun_path)) {
    return std::vector<std::string>(lines.size(),
                                    "(control socket path too long: " + control_socket + ")");
  }
  std::memcpy(addr.sun_path, control_socket.data(), control_socket.size());
  int fd = -1;
  for (int waited = 0; fd < 0 && waited <= connect_wait_ms; waited += 10) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      fd = -1;
      usleep(10 * 1000);
    }
  }
  if (fd < 0) {
    return std::vector<std::string>(lines.size(), "(no control socket at " + control_socket + ")");
  }
  std::vector<std::string> replies;
  for (const std::string& line : lines) {
    const std::string out = line + "\n";
    std::string reply;
    if (write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
      reply = "(write failed)";
    } else {
      char c;
      while (read(fd, &c, 1) == 1 && c != '\n') {
        reply.push_back(c);
      }
    }
    replies.push_back(std::move(reply));
  }
  close(fd);
  return replies;
}

std::string WorkerCommand(const std::string& control_socket, const std::string& line,
                          int connect_wait_ms) {
  return WorkerCommands(control_socket, {line}, connect_wait_ms).front();
}

std::optional<uint64_t> ReplyField(const std::string& reply, const std::string& key) {
  for (absl::string_view item : absl::StrSplit(reply, ' ', absl::SkipEmpty())) {
    uint64_t value = 0;
    if (absl::ConsumePrefix(&item, key) && absl::ConsumePrefix(&item, "=")) {
      // The first item of that key counts (a reply never repeats one); SimpleAtoi takes a
      // trailing newline and refuses a sign.
      return absl::SimpleAtoi(item, &value)
                 ? std::optional<uint64_t>(value)
                 : std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace supermachine::test_support
