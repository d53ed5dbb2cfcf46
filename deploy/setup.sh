#!/usr/bin/env bash
# deploy/setup.sh — installs everything supermachine needs on Debian 12, builds it, builds (or
# reuses from cache) the guest kernel, and installs the binaries. Idempotent: a second run
# reuses the package state, the CMake build tree and the kernel cache.
#
#   ./deploy/setup.sh                 # everything
#   ./deploy/setup.sh --no-apt        # skip apt (packages already there)
#   ./deploy/setup.sh --prefix DIR    # install under DIR (default /usr/local)
#   ./deploy/setup.sh --no-install    # build only
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
prefix=/usr/local
do_apt=1
do_install=1
build_dir=${SM_BUILD_DIR:-$root/build}

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-apt) do_apt=0 ;;
    --no-install) do_install=0 ;;
    --prefix) prefix=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

step() { printf '\n==> %s\n' "$*"; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "setup.sh: '$*' needs root; run as root or install sudo" >&2; exit 1
  fi
}

# Reserves 65536 subordinate uids and gids for 'supermachine' (the same numbers in both files:
# a worker's gid is its uid's number), after every range already there, unless it has one.
reserve_worker_ids() {
  local have
  as_root touch /etc/subuid /etc/subgid
  have=$(awk -F: 'FILENAME=="/etc/subuid" {if ($1=="supermachine") u[$2]=1; next}
                  $1=="supermachine" && ($2 in u) {print $2 ":" $3; exit}' \
           /etc/subuid /etc/subgid 2>/dev/null || true)
  if [ -n "$have" ]; then
    echo "    per-VM worker ids: ${have%%:*} (+${have##*:}) reserved for 'supermachine'"
    return
  fi
  local start
  start=$(cat /etc/subuid /etc/subgid 2>/dev/null |
          awk -F: 'NF==3 && $2+$3 > m {m=$2+$3} END {s = m < 100000 ? 100000 : m;
                   printf "%d\n", int((s + 65535) / 65536) * 65536}')
  as_root usermod --add-subuids "$start-$((start + 65535))" \
                  --add-subgids "$start-$((start + 65535))" supermachine
  echo "    per-VM worker ids: reserved $start-$((start + 65535)) for 'supermachine'" \
       "in /etc/subuid and /etc/subgid"
}

if [ ! -r /etc/debian_version ]; then
  echo "setup.sh: this script supports Debian 12 (bookworm); found no /etc/debian_version." >&2
  echo "          Install the packages in deploy/packages.txt by hand, then rerun with --no-apt." >&2
  exit 1
fi

if [ "$do_apt" = 1 ]; then
  step "installing Debian packages (deploy/packages.txt)"
  mapfile -t pkgs < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt")
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" \
    >/dev/null
  echo "    ${#pkgs[@]} packages present"
fi

step "building (CMake + Ninja, $build_dir)"
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$build_dir"

step "guest kernel (kernel/build.sh, cached by content hash)"
"$root/kernel/build.sh"

if [ "$do_install" = 1 ]; then
  step "installing binaries under $prefix"
  as_root cmake --install "$build_dir" --prefix "$prefix" >/dev/null
  for b in supermachined smctl supermachine-worker; do
    [ -x "$prefix/bin/$b" ] && echo "    $prefix/bin/$b"
  done
  # deploy/supermachined.socket gives the socket to this group (SocketGroup=): its members may
  # use smctl without root. Without the group that unit fails to start.
  if ! getent group supermachine >/dev/null; then
    as_root groupadd --system supermachine
    echo "    created system group 'supermachine' (add users: usermod -aG supermachine USER)"
  fi
  # Per-VM worker uids (docs/security.md "Worker sandbox"): the daemon runs each jailed worker
  # as a uid of its own, taken from the subordinate id range reserved here for the system user
  # 'supermachine' in /etc/subuid and /etc/subgid: useradd, newuidmap and podman read the same
  # files, so no other tool hands these ids out. The user owns no files and cannot log in.
  if ! getent passwd supermachine >/dev/null; then
    as_root useradd --system --gid supermachine --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment "supermachine worker ids" supermachine
    echo "    created system user 'supermachine' (owner of the per-VM worker id range)"
  fi
  reserve_worker_ids
fi

step "setup done"
