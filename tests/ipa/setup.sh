#!/bin/sh
# The real ironic-python-agent (PyPI) and the tests' loop-only hardware
# manager, in a venv: tests/ipa/setup.sh <venv>.
set -eu
venv=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$venv/bin/ironic-python-agent" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q ironic-python-agent==13.0.0
fi
# Built from a copy: pip leaves build/ and *.egg-info where it builds.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$here/loop_only_hwm" "$tmp/"
"$venv/bin/pip" install -q --no-deps --force-reinstall "$tmp/loop_only_hwm"
