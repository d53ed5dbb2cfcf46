// File: default_paths.cc
#include "daemon/config/default_paths.h"

#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

namespace supermachine::config {
namespace {

std::string Env(const char* name) {
  const char* v = ::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

}  // namespace

UserEnvironment CurrentUserEnvironment() {
  UserEnvironment env;
  env.uid = ::geteuid();
  env.home = Env("HOME");
  if (env.home.empty()) {
    // systemd services and `sudo -u` may run without $HOME; the password database knows it.
    struct passwd pw;
    struct passwd* result = nullptr;
    char buf[4096];
    if (::getpwuid_r(env.uid, &pw, buf, sizeof(buf), &result) == 0 && result != nullptr) {
      env.home = pw.pw_dir;
    }
  }
  env.xdg_runtime_dir = Env("XDG_RUNTIME_DIR");
  env.xdg_state_home = Env("XDG_STATE_HOME");
  return env;
}

std::string DefaultSocketPath(const UserEnvironment& env) {
  if (env.uid == 0) {
    return "/run/supermachine/supermachined.sock";
  }
  std::string runtime = env.xdg_runtime_dir.empty()
                            ? "/run/user/" + std::to_string(env.uid)
                            : env.xdg_runtime_dir;
  return runtime + "/supermachine/supermachined.sock";
}

std::string DefaultStateDir(const UserEnvironment& env) {
  if (env.uid == 0) {
    return "/var/lib/supermachine";
  }
  if (!env.xdg_state_home.empty()) {
    return env.xdg_state_home + "/supermachine";
  }
  return env.home + "/.local/state/supermachine";
}

}  // namespace supermachine::config
