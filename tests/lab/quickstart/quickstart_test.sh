#!/usr/bin/env bash
# quickstart_test.sh SOURCE_DIR BUILD_DIR WORK_DIR — runs `deploy/quickstart.sh --no-setup`
# as the CI job for README's first command does: binaries from BUILD_DIR, a fresh state dir
# (so no daemon of an earlier run is reused), port 0. Passes when the demo page came back from
# the VM, the second `smctl run` hit the snapshot cache, and the script said ok. Fails (never
# skips) with the reason otherwise, including when the binaries or the kernel are missing.
set -uo pipefail

src=${1:?usage: quickstart_test.sh SOURCE_DIR BUILD_DIR WORK_DIR}
build=${2:?}
work=${3:?}
fail() { echo "quickstart_test: FAIL: $*" >&2; exit 1; }

state=$work/qs-state
rm -rf "$state"
mkdir -p "$state" || fail "cannot create $state"
log=$work/quickstart.log

SM_BUILD_DIR=$build timeout --kill-after=30 2340 "$src/deploy/quickstart.sh" --no-setup \
  --state-dir "$state" --port 0 --lab-timeout 1000 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || fail "deploy/quickstart.sh exited $rc (output above, also in $log)"

grep -q '^demo: VM .* serves http://127.0.0.1:[0-9]*/ :$' "$log" || fail "no 'serves' line"
grep -q '    | <h1>Hello from a supermachine microVM</h1>' "$log" ||
  fail "the demo page did not come back through the forwarded port"
grep -q '^demo: second run: cache hit: no bake, no boot$' "$log" ||
  fail "the second smctl run did not hit the snapshot cache"
grep -q '^demo:   first smctl run (bake + restore + port): ' "$log" || fail "no timings printed"
if grep -q '^quickstart: this host has no hardware virtualization' "$log"; then
  grep -q '^demo: timings (emulated, not representative):$' "$log" ||
    fail "an emulated run did not mark its figures as emulated"
fi
grep -q '^demo: ok$' "$log" || fail "the demo did not say ok"
echo "quickstart_test: PASS"
