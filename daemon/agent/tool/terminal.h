// File: terminal.h
// The local terminal side of `sm-agent exec -t`: raw mode for the session's lifetime (so ^C,
// ^Z and line editing go to the guest's pty, not to us) and the current window size.
#pragma once

#include <termios.h>

#include <optional>

#include "daemon/agent/types.h"

namespace supermachine::agent::tool {

// Puts `fd` into raw mode if it is a terminal; restores the saved mode on destruction.
class RawTerminal {
 public:
  explicit RawTerminal(int fd);
  ~RawTerminal() { Restore(); }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  // Idempotent; for paths that leave through _exit.
  void Restore();

 private:
  int fd_;
  std::optional<termios> saved_;
};

// The window size of terminal `fd`, or nullopt when it is not a terminal.
std::optional<WindowSize> TerminalSize(int fd);

}  // namespace supermachine::agent::tool
