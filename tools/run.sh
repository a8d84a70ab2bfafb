#!/usr/bin/env bash
# One entry point for a fresh machine: creates (or reuses) .venv, installs bugdet into it when
# pyproject.toml changed since the last install, then runs the requested job.
#
#   tools/run.sh demo [ARGS...]   the end-to-end demo on the built-in playtest world
#   tools/run.sh test [ARGS...]   the test suite (pytest; extra ARGS go to pytest)
#   tools/run.sh bugdet [ARGS...] any bugdet command inside the environment
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${BUGDET_VENV:-.venv}"
EXTRAS="${BUGDET_EXTRAS:-cpu,dev}"   # gpu,dev on a CUDA machine
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment in $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.bugdet-install-stamp"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing bugdet[$EXTRAS] into $VENV (first run downloads torch: a few minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi

export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
job="${1:-}"
shift || true
case "$job" in
  demo) exec "$VENV/bin/bugdet" demo "$@" ;;
  test) exec "$VENV/bin/python" -m pytest "$@" ;;
  bugdet) exec "$VENV/bin/bugdet" "$@" ;;
  *) echo "usage: tools/run.sh demo|test|bugdet [ARGS...]" >&2; exit 2 ;;
esac
