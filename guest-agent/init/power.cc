// File: guest-agent/init/power.cc
// Ends the VM with a reset the VMM turns into an exit.
#include "guest-agent/init/power.h"

#include <sys/reboot.h>
#include <unistd.h>

namespace supermachine::agent {

void EndVm() {
  sync();
  reboot(RB_AUTOBOOT);
}

}  // namespace supermachine::agent
