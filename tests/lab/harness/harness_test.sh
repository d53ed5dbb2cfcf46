#!/usr/bin/env bash
# File: tests/lab/harness/harness_test.sh
# Tests of tests/lab/run itself (run on the host, not inside the lab): in one lab boot, the
# command sees svm + a working /dev/kvm (kvm_check), runs in the caller's cwd, can write to the
# build dir at the same path, its output is streamed (even without a final newline), its exit
# status (3) comes back, and a nested tests/lab/run works (direct mode). The command fails (3)
# on its first attempt only, so the run also shows the emulated lab's retry: RETRYING, then
# FLAKE, status 0, and the first attempt's failure in $SM_LAB_FLAKE_LOG (in direct mode there
# is no retry: status 3 comes straight back). That run allows two retries, not the default
# one: the deliberate failure uses up one, and the emulated L1 itself may wedge in the next
# (seen in CI), which says nothing about the runner. A second run checks that --timeout kills
# a hung run with status 124 instead of hanging; a third, that a vCPU stuck in the int3
# handler (the signature of the emulated L1's text-patching livelock) ends the run early.
# usage: harness_test.sh <kvm_check binary> <scratch dir inside the build dir>
set -uo pipefail
readonly run="$(cd "$(dirname "$0")/.." && pwd)/run"
readonly kvm_check="$1"
readonly scratch="$2"
failures=0
fail() { echo "harness_test: FAIL: $*"; failures=$((failures + 1)); }

rm -rf "${scratch}" && mkdir -p "${scratch}" && cd "${scratch}" || exit 1
flakes="${scratch}/flakes.log"
# Inside, a nested tests/lab/run sees real KVM and runs its command directly (status 4).
out="$(SM_LAB_FLAKE_LOG="${flakes}" SM_LAB_RETRIES=2 "${run}" --timeout 600 -- sh -c \
  "'${kvm_check}' && pwd && echo written-inside >'${scratch}/from-lab' && echo to-stderr >&2 &&
   '${run}' -- sh -c 'exit 4'; echo nested=\$?; printf no-newline-at-end;
   if [ -e '${scratch}/attempted' ]; then exit 0; fi
   touch '${scratch}/attempted'; echo 'x.cc:1: Failure'; echo 'the first attempt fails'; exit 3" 2>&1)"
status=$?
echo "${out}"
if grep -q '^tests/lab/run: mode: emulated' <<<"${out}"; then
  [[ ${status} -eq 0 ]] || fail "exit status ${status}, expected 0 (3, then a passing retry)"
  grep -q 'CMD failed (exit 3); RETRYING' <<<"${out}" ||
    fail "the first attempt's status 3 did not come back, or it was not retried loudly"
  grep -q 'FLAKE: sh passed on attempt [23] after: CMD failed (exit 3)' <<<"${out}" ||
    fail "the pass on retry was not flagged"
  grep -q 'the first attempt fails' "${flakes}" 2>/dev/null ||
    fail "SM_LAB_FLAKE_LOG lacks the first attempt's failure lines"
else
  [[ ${status} -eq 3 ]] || fail "exit status ${status}, expected 3 (no retry on hardware KVM)"
fi
grep -q '^tests/lab/run: mode: \(emulated\|hardware\)' <<<"${out}" ||
  fail "no line saying which mode the lab uses"
grep -qx 'nested=4' <<<"${out}" || fail "nested tests/lab/run did not return its status 4"
grep -q 'no-newline-at-end' <<<"${out}" || fail "output without a final newline was lost"
grep -q '^kvm_check: PASS' <<<"${out}" || fail "kvm_check did not pass inside the lab"
grep -qx "${scratch}" <<<"${out}" || fail "command did not run in the caller's cwd ${scratch}"
grep -qx 'to-stderr' <<<"${out}" || fail "stderr of the command was not streamed"
[[ "$(cat "${scratch}/from-lab" 2>/dev/null)" == written-inside ]] ||
  fail "a file written inside the lab to the build dir is not visible on the host"

start=${SECONDS}
out="$("${run}" --timeout 20 -- sleep 600 2>&1)"
status=$?
echo "${out}" | tail -n 3
[[ ${status} -eq 124 ]] || fail "timeout run exited ${status}, expected 124"
((SECONDS - start < 120)) || fail "timeout run took $((SECONDS - start)) s for a 20 s timeout"
grep -q 'TIMEOUT' <<<"${out}" || fail "the timeout run did not say TIMEOUT"

# The text-patching livelock watch: int3_storm.sh keeps a vCPU in the int3 handler, as the
# livelock does, so the attempt must end early (a 5 s check, 4 checks in a row) as a lab
# fault (125, no retry asked for), long before its 600 s timeout.
if grep -q '^tests/lab/run: mode: emulated' <<<"${out}"; then
  start=${SECONDS}
  out="$(SM_LAB_RETRIES=0 SM_LAB_LIVELOCK_CHECK_SECONDS=5 "${run}" --timeout 600 -- \
    "$(dirname "$0")/int3_storm.sh" 2>&1)"
  status=$?
  echo "${out}" | grep -v '^sample '
  grep -q '^int3 storm' <<<"${out}" || fail "int3_storm.sh did not start its storm"
  [[ ${status} -eq 125 ]] || fail "the int3 storm run exited ${status}, expected 125"
  grep -q 'livelocked patching its own text' <<<"${out}" ||
    fail "the int3 storm was not reported as the text-patching livelock"
  grep -q '^sample .*L1 vCPU .*exc_int3' <<<"${out}" ||
    fail "the livelock report lacks the vCPU samples in exc_int3"
  ((SECONDS - start < 300)) ||
    fail "the livelock was found only after $((SECONDS - start)) s (checks every 5 s)"
fi

((failures == 0)) || exit 1
echo "harness_test: PASS"
