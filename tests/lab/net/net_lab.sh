#!/bin/sh
# Runs the net lab test. passt needs a host interface with a default route to take its
# outbound addresses from; the emulated lab's L1 has only lo, so there (SM_LAB=1 and no
# default route) give it a dummy interface with one. Guests only talk to the host's loopback.
set -e
if [ "${SM_LAB:-}" = 1 ] && [ -z "$(ip -4 route show default 2>/dev/null)" ]; then
  modprobe dummy 2>/dev/null || true
  ip link add smnet0 type dummy
  ip addr add 192.0.2.2/24 dev smnet0
  ip link set smnet0 up
  ip route add default via 192.0.2.1 dev smnet0
fi
exec "$@"
