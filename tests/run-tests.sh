#!/usr/bin/env bash
# Run the whole suite with the venv's pytest (Debian's python, as the test
# users get it). pytest's "no tests collected" (exit 5) is a failure here:
# a suite that ran nothing proves nothing.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${NIXMOD_VENV:-/opt/nixmod/venv}"
"$VENV/bin/python" -m pytest -p no:cacheprovider --timeout=600 "$@"
rc=$?
if [ "$rc" = 5 ]; then echo "run-tests: no tests were collected" >&2; exit 1; fi
exit "$rc"
