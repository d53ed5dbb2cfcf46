// File: terminal.cc
// termios raw mode and TIOCGWINSZ for sm-agent's tty exec.
#include "daemon/agent/tool/terminal.h"

#include <sys/ioctl.h>
#include <unistd.h>

namespace supermachine::agent::tool {

RawTerminal::RawTerminal(int fd) : fd_(fd) {
  termios t = {};
  if (!isatty(fd) || tcgetattr(fd, &t) != 0) {
    return;
  }
  saved_ = t;
  cfmakeraw(&t);
  (void)tcsetattr(fd, TCSANOW, &t);
}

void RawTerminal::Restore() {
  if (saved_.has_value()) {
    (void)tcsetattr(fd_, TCSANOW, &*saved_);
    saved_.reset();
  }
}

std::optional<WindowSize> TerminalSize(int fd) {
  winsize ws = {};
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) {
    return std::nullopt;
  }
  return WindowSize{.rows = ws.ws_row, .cols = ws.ws_col};
}

}  // namespace supermachine::agent::tool
