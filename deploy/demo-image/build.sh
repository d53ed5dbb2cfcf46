#!/usr/bin/env bash
# deploy/demo-image/build.sh — builds the quickstart's demo image locally, as an OCI image
# layout: Debian's static busybox (package busybox-static) running `httpd` on port 80 and
# serving one page. No registry and no network: umoci writes the layout from a staged root
# tree, so `smctl run oci-layout:DIR:TAG` can bake it anywhere.
#
#   deploy/demo-image/build.sh OUT_DIR [TAG]      # TAG defaults to "demo"
#
# Prints the image ref (oci-layout:OUT_DIR:TAG) on stdout. OUT_DIR is replaced.
set -euo pipefail

out=${1:?usage: build.sh OUT_DIR [TAG]}
tag=${2:-demo}
busybox=${SM_DEMO_BUSYBOX:-/bin/busybox}
die() { echo "demo-image: $*" >&2; exit 1; }

command -v umoci >/dev/null || die "umoci is missing: apt-get install umoci (deploy/packages.txt)"
[ -x "$busybox" ] || die "$busybox is missing: apt-get install busybox-static"
# A dynamically linked busybox (Debian's 'busybox' package) would need a libc in the image.
if ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is dynamically linked: install busybox-static (it replaces busybox)"
fi
case "$out" in /*) ;; *) out=$(pwd)/$out ;; esac

stage=$(mktemp -d "${TMPDIR:-/tmp}/sm-demo-image.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# The root tree: busybox and its applet links, the mount points the guest agent expects, the
# accounts the image's user resolves against, and the page.
root=$stage/rootfs
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc,www} "$root/root"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in sh ls cat echo httpd wget sleep date hostname; do
  ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
cat >"$root/www/index.html" <<'HTML'
<!doctype html>
<title>supermachine quickstart</title>
<h1>Hello from a supermachine microVM</h1>
<p>busybox httpd, restored from a snapshot into its own KVM guest.</p>
HTML

rm -rf "$out"
mkdir -p "$(dirname "$out")"
umoci init --layout "$out" >/dev/null
umoci new --image "$out:$tag" >/dev/null
# unpack + repack rather than `umoci insert`: umoci 0.4.7's insert writes a tar without its
# end-of-archive blocks, which strict readers (libarchive in our layer converter) refuse.
# --rootless: files keep uid/gid 0 in the layer whoever runs this.
umoci unpack --rootless --image "$out:$tag" "$stage/bundle" >/dev/null
cp -a "$root/." "$stage/bundle/rootfs/"
umoci repack --image "$out:$tag" "$stage/bundle" >/dev/null
umoci config --image "$out:$tag" \
  --config.entrypoint /bin/busybox \
  --config.cmd httpd --config.cmd -f --config.cmd -p --config.cmd 80 --config.cmd -h \
  --config.cmd /www \
  --config.exposedports 80/tcp \
  --config.workingdir / \
  --config.env PATH=/bin \
  --author supermachine-quickstart >/dev/null
umoci gc --layout "$out" >/dev/null
echo "oci-layout:$out:$tag"
