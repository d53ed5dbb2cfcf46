// File: fake_worker.cc
// A stand-in for supermachine-worker that the daemon can spawn without KVM or a guest: it
// writes its pid to <dir of --control>/fake-worker.pid (so the test knows a restore is under
// way and which process to watch) and then sleeps until killed, never answering the agent
// handshake: the daemon is left waiting mid-Acquire, where the test kills it.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  std::string control;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--control") == 0) {
      control = argv[i + 1];
    }
  }
  if (control.empty()) {
    std::fprintf(stderr, "fake worker: no --control\n");
    return 2;
  }
  const std::string dir = control.substr(0, control.rfind('/'));
  const std::string tmp = dir + "/fake-worker.pid.tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    std::perror("fake worker: pid file");
    return 2;
  }
  std::fprintf(f, "%d\n", static_cast<int>(::getpid()));
  std::fclose(f);
  std::rename(tmp.c_str(), (dir + "/fake-worker.pid").c_str());
  for (;;) {
    ::pause();
  }
}
