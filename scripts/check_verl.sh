#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# Run verl-fair's RayPPOTrainer tests against a verl source tree (e.g. a clone of verl's `neo` branch).
#
#   scripts/check_verl.sh VERL_SRC [PYTEST_ARGS...]      (or: make check-verl VERL_SRC=PATH)
#
# VERL_SRC may also be an unpacked verl wheel. The tree is not installed or modified. A second environment (VERL_ENV, default .venv-verl) reaches every
# package of the main one (VENV, default .venv) through a .pth file, with VERL_SRC put ahead of them, so its
# `verl` shadows the installed verl 0.9.1; the tree's own metadata (name, version, entry points), built by
# setuptools, shadows verl 0.9.1's. Packages the tree needs and the main environment lacks go into
# VERL_ENV only: EXTRA_PACKAGES="name ...". PYTEST_ARGS default to the RayPPOTrainer tests (TESTS).
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1/verl/__init__.py" ]]; then
    echo "usage: $0 VERL_SRC [PYTEST_ARGS...]   (VERL_SRC: a verl source tree, holding verl/__init__.py)" >&2
    exit 2
fi
VERL_SRC=$(cd "$1" && pwd)
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MAIN_PY="$ROOT/${VENV:-.venv}/bin/python"
ENV_DIR=${VERL_ENV:-$ROOT/.venv-verl}
TESTS=${TESTS:-"tests/test_verl_internals.py tests/test_legacy_adapter.py tests/test_e2e_legacy.py"}
[[ -x "$MAIN_PY" ]] || { echo "$0: no $MAIN_PY; run make setup first" >&2; exit 2; }

main_site=$("$MAIN_PY" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
"$MAIN_PY" -m venv --clear --without-pip "$ENV_DIR"
PY="$ENV_DIR/bin/python"
site=$("$PY" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
# .pth files are read in name order: the tree first, then the main environment with its own .pth files
echo "$VERL_SRC" >"$site/00-verl-src.pth"
echo "import site; site.addsitedir('$main_site')" >"$site/01-main-venv.pth"
if compgen -G "$VERL_SRC/verl-*.dist-info" >/dev/null; then  # an unpacked wheel (pip download verl==X --no-deps)
    cp -r "$VERL_SRC"/verl-*.dist-info "$site/"
else
    log=$(cd "$VERL_SRC" && "$MAIN_PY" -c "import sys; from setuptools import build_meta; \
build_meta.prepare_metadata_for_build_wheel(sys.argv[1])" "$site" 2>&1) || { echo "$log" >&2; exit 1; }
    rm -rf "$site/verl.egg-info"
fi
if ! "$PY" -c "import flash_attn" 2>/dev/null; then
    # trees without verl main's pure-torch padding fallback import flash-attn on every host: a CPU stand-in
    echo "$ROOT/scripts/cpu_flash_attn" >"$site/02-cpu-flash-attn.pth"
fi
if [[ -n "${EXTRA_PACKAGES:-}" ]]; then
    # shellcheck disable=SC2086
    "$MAIN_PY" -m pip install -q --target "$site" $EXTRA_PACKAGES
fi

"$PY" - "$VERL_SRC" <<'EOF'
import sys
from importlib import metadata

import verl

assert verl.__file__.startswith(sys.argv[1] + "/"), f"verl comes from {verl.__file__}, not {sys.argv[1]}"
dist = metadata.distribution("verl")
assert str(dist.locate_file("")).startswith(sys.prefix), f"verl's metadata comes from {dist.locate_file('')}"
print(f"verl {verl.__version__} (metadata {dist.version}) from {verl.__path__[0]}")
EOF
if git -C "$VERL_SRC" rev-parse --git-dir >/dev/null 2>&1; then
    echo "verl commit $(git -C "$VERL_SRC" log -1 --format='%H (%cs) %s')"
fi

cd "$ROOT"
if [[ $# -eq 0 ]]; then
    # shellcheck disable=SC2086
    set -- -q -p no:cacheprovider $TESTS
fi
exec "$PY" -m pytest "$@"
