// File: passt.cc
// Spawning passt on an inherited socketpair end.
#include "worker/net/passt.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::net {

std::vector<std::string> PasstArgv(const PasstOptions& options, int fd) {
  std::vector<std::string> argv = {
      options.binary,
      "--foreground",  // Stay our child: ChildProcess owns its lifetime.
      "--quiet",
      "--fd", absl::StrCat(fd),  // Implies --one-off: passt exits when we close our end.
      "--ipv4-only",             // The guest's static config is IPv4 (docs/networking.md).
      "--address", kGuestAddr,
      "--netmask", absl::StrCat(kGuestPrefixLen),
      "--gateway", kGatewayAddr,
      "--dns-forward", kResolverAddr,
      "--mac-addr", kPasstMac,
      "--tcp-ports", "none",  // Nothing inbound: the host reaches guests over vsock.
      "--udp-ports", "none",
  };
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  return argv;
}

absl::StatusOr<PasstBackend> StartPasst(const PasstOptions& options) {
  int fds[2];
  // Our end close-on-exec; passt's end inherited (only until we close it after the spawn).
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return base::ErrnoToStatus(errno, "socketpair for passt");
  }
  base::UniqueFd ours(fds[0]);
  base::UniqueFd theirs(fds[1]);
  if (fcntl(theirs.get(), F_SETFD, 0) != 0) {
    return base::ErrnoToStatus(errno, "clearing FD_CLOEXEC for passt's socket");
  }
  absl::StatusOr<base::ChildProcess> child =
      base::ChildProcess::Spawn({.argv = PasstArgv(options, theirs.get()), .new_session = true});
  if (!child.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("starting passt (", options.binary, ") for --net passt: ",
                     child.status().message(), "; install the Debian package 'passt'"));
  }
  // Not waited for: a passt that refuses its options exits, our end then reads EOF and the
  // device takes the link down and logs it (the VM itself keeps running).
  theirs.Reset();
  PasstBackend b;
  b.stream = std::make_unique<FramedStream>(std::move(ours));
  b.process.emplace(std::move(*child));
  return b;
}

}  // namespace supermachine::net
