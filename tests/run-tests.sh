#!/usr/bin/env bash
# Run the type checker and the import layers check, then the whole suite with
# the venv's pytest (Debian's python, as the test users get it). A mypy error
# fails the run before any test starts: a renamed import or attribute is caught
# here, not by a user; so does an import that runs up a floor (lint-imports,
# contracts in pyproject.toml [tool.importlinter], docs/HACKING.md "Floors").
# pytest's "no tests collected" (exit 5) is a failure here: a suite that ran
# nothing proves nothing.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${NIXMOD_VENV:-/opt/nixmod/venv}"
if [ ! -x "$VENV/bin/mypy" ]; then
    echo "run-tests: $VENV/bin/mypy is missing; install the test extras: $VENV/bin/pip install -e '.[test]'" >&2
    exit 1
fi
# files and options come from [tool.mypy] in pyproject.toml; the last line is its summary
mypy_out=$("$VENV/bin/mypy" 2>&1)
mypy_rc=$?
if [ "$mypy_rc" != 0 ]; then
    printf '%s\n' "$mypy_out" >&2
    echo "run-tests: mypy failed; fix the type errors above first" >&2
    exit 1
fi
printf 'mypy: %s\n' "$(printf '%s\n' "$mypy_out" | tail -n 1)"
if [ ! -x "$VENV/bin/lint-imports" ]; then
    echo "run-tests: $VENV/bin/lint-imports is missing; install the test extras: $VENV/bin/pip install -e '.[test]'" >&2
    exit 1
fi
layers_out=$("$VENV/bin/lint-imports" --no-cache 2>&1)
layers_rc=$?
if [ "$layers_rc" != 0 ]; then
    printf '%s\n' "$layers_out" >&2
    echo "run-tests: lint-imports failed; an import runs up a floor (docs/HACKING.md \"Floors\")" >&2
    exit 1
fi
printf 'lint-imports: %s\n' "$(printf '%s\n' "$layers_out" | grep -E '^Contracts: ' | tail -n 1)"
"$VENV/bin/python" -m pytest -p no:cacheprovider --timeout=600 --durations=30 "$@"
rc=$?
if [ "$rc" = 5 ]; then echo "run-tests: no tests were collected" >&2; exit 1; fi
exit "$rc"
