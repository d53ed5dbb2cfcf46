// File: default_paths.h
// Where supermachined listens and keeps state when not told otherwise. One rule, shared by the
// daemon and smctl (which must find the same socket), so it lives in a dependency-free target.
#pragma once

#include <sys/types.h>

#include <string>

namespace supermachine::config {

// The inputs of the rule, injectable so tests do not depend on who runs them.
struct UserEnvironment {
  uid_t uid = 0;
  std::string home;             // $HOME
  std::string xdg_runtime_dir;  // $XDG_RUNTIME_DIR
  std::string xdg_state_home;   // $XDG_STATE_HOME
};

UserEnvironment CurrentUserEnvironment();

// Root: /run/supermachine/supermachined.sock. Others: $XDG_RUNTIME_DIR/supermachine/
// supermachined.sock, or /run/user/<uid>/supermachine/… when XDG_RUNTIME_DIR is unset.
std::string DefaultSocketPath(const UserEnvironment& env);

// Root: /var/lib/supermachine. Others: $XDG_STATE_HOME/supermachine, or
// $HOME/.local/state/supermachine.
std::string DefaultStateDir(const UserEnvironment& env);

}  // namespace supermachine::config
