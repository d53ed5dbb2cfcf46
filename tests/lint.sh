#!/usr/bin/env bash
# tests/lint.sh [REV] — clang-tidy and cppcheck on the C++ files changed since REV (default:
# the merge base with main, or HEAD~1). Uses build/compile_commands.json. Prints findings;
# exits non-zero when clang-tidy or cppcheck report an error-level finding.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rev=${1:-HEAD~1}
build_dir=${SM_BUILD_DIR:-$root/build}
mapfile -t files < <(git diff --name-only --diff-filter=AM "$rev" -- '*.cc' | grep -v '^tests/fuzz/')
if [ ${#files[@]} -eq 0 ]; then
  echo "lint: no changed .cc files since $rev"
  exit 0
fi
rc=0
echo "lint: clang-tidy on ${#files[@]} files"
clang-tidy -p "$build_dir" --quiet "${files[@]}" 2>/dev/null | grep -E 'warning:|error:' && rc=1
echo "lint: cppcheck"
cppcheck --quiet --enable=warning,performance,portability --inline-suppr \
  --suppress=missingIncludeSystem --library=googletest --error-exitcode=1 -I "$root" "${files[@]}" || rc=1
exit $rc
