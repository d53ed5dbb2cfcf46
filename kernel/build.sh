#!/usr/bin/env bash
# File: kernel/build.sh
# Builds the minimal x86_64 microVM guest kernel (vmlinux for PVH boot + bzImage) from Debian's
# linux-source-6.1 package, cached by content hash. See kernel/README.md.
#
# Usage:
#   kernel/build.sh               build if not cached; print the cache dir on stdout (last line)
#   kernel/build.sh --print-dir   print the cache dir this tree maps to; build nothing
#                                 (exit 0 if it is built, 1 if not)
#   kernel/build.sh --force       rebuild even if cached
#
# Environment: SM_CACHE_DIR (default /var/cache/supermachine), SM_KERNEL_JOBS (default nproc),
# SM_KERNEL_SOURCE (default /usr/src/linux-source-6.1.tar.xz).
#
# Cache layout: $SM_CACHE_DIR/kernel/<hash>/{vmlinux,bzImage,config,build-info}, where <hash> is
# sha256 over the linux-source package version, the config fragments and this script. A
# directory only appears there complete: it is built under a temp name and renamed into place.
set -euo pipefail

# The whole script is one brace group: bash parses it completely before running it, so editing
# this file while a build runs cannot corrupt that build.
{
readonly script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly fragments=("${script_dir}/config/common.config" "${script_dir}/config/x86_64.config")
readonly source_pkg="linux-source-6.1"
readonly source_tar="${SM_KERNEL_SOURCE:-/usr/src/${source_pkg}.tar.xz}"
readonly cache_root="${SM_CACHE_DIR:-/var/cache/supermachine}/kernel"
readonly jobs="${SM_KERNEL_JOBS:-$(nproc)}"

die() { echo "kernel/build.sh: $*" >&2; exit 1; }
log() { echo "kernel/build.sh: $*" >&2; }

mode=build
case "${1:-}" in
  "") ;;
  --print-dir) mode=print ;;
  --force) mode=force ;;
  -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac

source_version="$(dpkg-query -W -f='${Version}' "${source_pkg}" 2>/dev/null || true)"
[[ -n "${source_version}" ]] ||
  die "package ${source_pkg} is not installed: apt-get install ${source_pkg} (deploy/setup.sh does)"

# The key: package version + fragments + this script. Changing any of them gives a new dir.
hash="$( { echo "${source_pkg} ${source_version}"; cat "${fragments[@]}" "${BASH_SOURCE[0]}"; } |
  sha256sum | cut -c1-16)"
readonly out_dir="${cache_root}/${hash}"

if [[ "${mode}" == print ]]; then
  echo "${out_dir}"
  [[ -f "${out_dir}/vmlinux" && -f "${out_dir}/bzImage" ]]
  exit
fi
if [[ "${mode}" == build && -f "${out_dir}/vmlinux" && -f "${out_dir}/bzImage" ]]; then
  echo "${out_dir}"
  exit 0
fi

[[ -r "${source_tar}" ]] || die "${source_tar} not found: apt-get install ${source_pkg}"
for tool in make gcc flex bison bc xz; do
  command -v "${tool}" >/dev/null || die "'${tool}' not found: run deploy/setup.sh"
done

mkdir -p "${cache_root}"
# One builder at a time per cache; a second caller waits, then finds the result cached.
exec 9>"${cache_root}/.lock"
flock 9
if [[ "${mode}" == build && -f "${out_dir}/vmlinux" && -f "${out_dir}/bzImage" ]]; then
  echo "${out_dir}"
  exit 0
fi

start=${SECONDS}

# Unpacked source, shared by every config of this package version (builds are out-of-tree, so
# the tree stays clean). Also unpacked under a temp name and renamed into place.
src_dir="${cache_root}/src-${source_version}"
if [[ ! -f "${src_dir}/Makefile" ]]; then
  log "unpacking ${source_tar} (${source_version})"
  rm -rf "${src_dir}" "${src_dir}.tmp"
  mkdir -p "${src_dir}.tmp"
  tar -xJf "${source_tar}" -C "${src_dir}.tmp" --strip-components=1
  mv "${src_dir}.tmp" "${src_dir}"
fi

# x86 keeps only 2048 bytes of kernel command line (COMMAND_LINE_SIZE is a constant, not a
# Kconfig option), and every virtio-mmio disk costs ~36 bytes of it (`virtio_mmio.device=…`):
# 64 image layers would not fit. Raise it to 4096. Loaders learn the limit from the kernel
# itself: bzImage's header field cmdline_size, and for vmlinux the size of the
# `boot_command_line` symbol (supermachine-worker reads both). Idempotent on the shared tree.
setup_h="${src_dir}/arch/x86/include/asm/setup.h"
sed -i 's/^#define COMMAND_LINE_SIZE 2048$/#define COMMAND_LINE_SIZE 4096/' "${setup_h}"
grep -q '^#define COMMAND_LINE_SIZE 4096$' "${setup_h}" ||
  die "could not raise COMMAND_LINE_SIZE in ${setup_h}"

# Temp dirs of builds that were killed (we hold the lock, so none of them is running).
rm -rf "${cache_root}"/.build-*
tmp_dir="$(mktemp -d "${cache_root}/.build-${hash}.XXXXXX")"
trap 'rm -rf "${tmp_dir}"' EXIT
obj="${tmp_dir}/obj"
mkdir -p "${obj}"
# Reproducible: no build user, host or time in the image (`uname -v` shows the source date),
# so the same inputs give the same vmlinux on every machine.
export KBUILD_BUILD_USER=supermachine KBUILD_BUILD_HOST=supermachine
KBUILD_BUILD_TIMESTAMP="$(date -u -d "@$(stat -c %Y "${source_tar}")" '+%Y-%m-%d %H:%M:%S UTC')"
export KBUILD_BUILD_TIMESTAMP
kmake() { make -C "${src_dir}" O="${obj}" ARCH=x86_64 "$@"; }

log "configuring (allnoconfig + ${fragments[*]##*/})"
# Same as scripts/kconfig/merge_config.sh -n: allnoconfig with the concatenated fragments as
# KCONFIG_ALLCONFIG, so every symbol not named in a fragment gets its allno value. Kconfig
# silently drops values whose dependencies are off; the check below catches that.
cat "${fragments[@]}" >"${tmp_dir}/fragments.config"
kmake KCONFIG_ALLCONFIG="${tmp_dir}/fragments.config" allnoconfig >"${tmp_dir}/config.log" 2>&1 ||
  { cat "${tmp_dir}/config.log" >&2; die "allnoconfig failed"; }
kmake olddefconfig >/dev/null

# Config check: every `CONFIG_X=v` and `# CONFIG_X is not set` in the fragments must be in the
# final .config exactly so. olddefconfig silently drops options whose dependencies are missing.
missing=0
while IFS= read -r line; do
  if [[ "${line}" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
    want="${line}"
    sym="${BASH_REMATCH[1]}"
  elif [[ "${line}" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
    sym="${BASH_REMATCH[1]}"
    # Absent from .config also means "off" (the symbol's dependencies are off).
    if ! grep -q "^${sym}=" "${obj}/.config"; then
      continue
    fi
    want="${line}"
  else
    continue
  fi
  got="$(grep -E "^(# )?${sym}[= ]" "${obj}/.config" || echo "(absent)")"
  if [[ "${got}" != "${want}" ]]; then
    echo "kernel/build.sh: config check: wanted '${want}', got '${got}'" >&2
    missing=$((missing + 1))
  fi
done < <(cat "${fragments[@]}")
((missing == 0)) ||
  die "config check failed: ${missing} option(s) from kernel/config/*.config were dropped by olddefconfig (missing dependencies?)"
log "config check passed"

log "building vmlinux + bzImage with -j${jobs} (a few minutes; log: ${tmp_dir}/build.log while running)"
if ! kmake -j"${jobs}" vmlinux bzImage >"${tmp_dir}/build.log" 2>&1; then
  tail -n 40 "${tmp_dir}/build.log" >&2
  die "kernel build failed"
fi

# vmlinux must carry the PVH entry note (Xen ELF note type 18, XEN_ELFNOTE_PHYS32_ENTRY).
if ! readelf -n "${obj}/vmlinux" 2>/dev/null | grep -q 'Xen.*0x00000012\|PHYS32_ENTRY'; then
  die "vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): is CONFIG_PVH on?"
fi

stage="${tmp_dir}/out"
mkdir -p "${stage}"
cp "${obj}/vmlinux" "${stage}/vmlinux"
cp "${obj}/arch/x86/boot/bzImage" "${stage}/bzImage"
cp "${obj}/.config" "${stage}/config"
elapsed=$((SECONDS - start))
{
  echo "source=${source_pkg} ${source_version}"
  echo "hash=${hash}"
  echo "jobs=${jobs}"
  echo "build_seconds=${elapsed}"
  echo "vmlinux_bytes=$(stat -c %s "${stage}/vmlinux")"
  echo "bzImage_bytes=$(stat -c %s "${stage}/bzImage")"
  echo "built=$(date -u +%FT%TZ)"
} >"${stage}/build-info"
sync -f "${stage}/vmlinux"
rm -rf "${out_dir}"
mv "${stage}" "${out_dir}"
sync -f "${cache_root}"
log "done in ${elapsed}s: $(tr '\n' ' ' <"${out_dir}/build-info")"
echo "${out_dir}"
exit 0
}
