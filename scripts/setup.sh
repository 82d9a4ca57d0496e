#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv: the CPU build of torch first,
# then fx2nnef in editable mode with its test and demo extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, exactly this spelling: it takes the CPU build (other spellings may pull a CUDA build)
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]"
# older tract releases, each in its own small virtualenv (numpy + tract only), so the tests load and
# run archives that target them (FX2NNEF_TRACT_ENVS=.venv-tract lets check_io use them too)
for release in 0.21.13 0.22.4 0.23.0; do
    [ -x ".venv-tract/$release/bin/python" ] || python3 -m venv ".venv-tract/$release"
    ".venv-tract/$release/bin/python" -m pip install -q "tract==$release" numpy
done
