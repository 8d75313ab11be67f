#!/usr/bin/env bash
# Runs OPA's v1 conformance cases against our engine and compares the pass
# count with the floor kept in tests/policy/conformance-floor.txt.
# Usage: scripts/conformance.sh PATH/TO/portcullis
set -euo pipefail
bin=${1:?usage: conformance.sh PATH/TO/portcullis}
root=$(git rev-parse --show-toplevel)
# shared/ sits beside the checkout (CI); a worktree one level deeper also works;
# so does a clone made elsewhere (e.g. under mktemp -d) of a local checkout that
# has it beside it (the clone's origin); PC_SHARED_DIR overrides all.
origin=$(git -C "$root" config --get remote.origin.url 2>/dev/null || true)
case "$origin" in /*) ;; *) origin="" ;; esac
shared=""
for d in "${PC_SHARED_DIR:-}" "$root/../shared" "$root/../../shared" \
         ${origin:+"$origin/../shared"} ${origin:+"$origin/../../shared"}; do
    if [ -n "$d" ] && [ -f "$d/rego-compliance/run.py" ]; then
        shared="$d/rego-compliance"
        break
    fi
done
[ -n "$shared" ] || { echo "rego conformance: ../shared/rego-compliance/run.py not found" >&2; exit 2; }
floor=$(tr -dc '0-9' < "$root/tests/policy/conformance-floor.txt")
logdir=$(dirname "$bin")
log="$logdir/conformance.log"
set +e
/usr/bin/python3 "$shared/run.py" -j "$(nproc)" --check-error-text --skip-experimental \
    "$bin policy" "$shared/cases/v1" > "$log" 2>&1
set -e
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
if [ -z "$summary" ]; then
    echo "rego conformance: run.py produced no summary (see $log)" >&2
    exit 1
fi
passed=${summary%% passed*}
failed=${summary#*passed, }
failed=${failed%% failed*}
total=$((passed + failed))
if [ "$passed" -lt "$floor" ]; then
    grep -E '^\s+\S+\s+pass=' "$log" >&2 || true
    echo "rego conformance: $passed of $total cases pass (floor $floor) -- BELOW FLOOR (log: $log)"
    exit 1
fi
echo "rego conformance: $passed of $total cases pass (floor $floor)"
