#!/bin/sh
# Create the virtual environment $1 with $PYTHON (default python3). On Debian the venv module lives in
# the python3-venv package; install it when we are root and it is missing, otherwise say what to run.
set -eu
venv=${1:-.venv}
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] && exit 0
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "python3-venv is missing; installing it with apt-get" >&2
        apt-get update -qq && apt-get install -y -qq python3-venv python3-dev
    else
        echo "error: $python has no venv module; run: sudo apt-get install python3-venv" >&2
        exit 1
    fi
fi
"$python" -m venv "$venv"
