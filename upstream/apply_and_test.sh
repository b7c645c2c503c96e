#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# Apply upstream/*.patch to a copy of a verl checkout and run each patch's CPU tests there.
#
#   upstream/apply_and_test.sh VERL_SRC
#
# VERL_SRC is a verl git repository (a clone, or the bare mirror). It is never modified: the patches go
# into a throwaway clone of its VERL_REF (default HEAD), deleted on exit. Open verl PRs a patch builds on
# (PREREQUISITES below) are picked from VERL_SRC's refs/pull/<N>/head first when the tree lacks them.
# Environment: PYTHON (default python3) runs pytest with PYTHONPATH=<the clone>; BASELINE=1 also runs each
# patch's tests on the tree before that patch, where they should fail.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 VERL_SRC   (a verl git repository; it is not modified)" >&2
    exit 2
fi
if ! git -C "$1" rev-parse --git-dir >/dev/null 2>&1; then
    echo "$0: VERL_SRC '$1' is not a git repository; pass a clone of verl (github.com/verl-project/verl)" >&2
    exit 2
fi
VERL_SRC=$(cd "$1" && pwd)
PATCHES_DIR=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
VERL_REF=${VERL_REF:-HEAD}

# PR number | a file, and a line in it, that show the tree already has the PR | whether a patch needs it
PREREQUISITES=(
    "7513|verl/trainer/ppo/checkpoint_callback.py|class CheckpointCallback:|required by 03"
    "7473|verl/trainer/ppo/ray_trainer.py|def _accepts_kwarg(|optional (lets 01's estimator test run)"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/verl"
git clone --quiet --no-checkout "$VERL_SRC" "$tree"
cd "$tree"
git -c advice.detachedHead=false checkout --quiet "$(git -C "$VERL_SRC" rev-parse "$VERL_REF")"
git config user.name "apply_and_test"
git config user.email "apply_and_test@localhost"
echo "verl $(git rev-parse HEAD) ($(git log -1 --format=%cs)) from $VERL_SRC"

for entry in "${PREREQUISITES[@]}"; do
    IFS='|' read -r number file line why <<<"$entry"
    if grep --quiet --fixed-strings "$line" "$file" 2>/dev/null; then
        echo "prerequisite #$number: already in the tree"
    elif git fetch --quiet "$VERL_SRC" "refs/pull/$number/head" 2>/dev/null; then
        base=$(git merge-base HEAD FETCH_HEAD)
        if git cherry-pick "$base..FETCH_HEAD" >/dev/null 2>&1; then
            echo "prerequisite #$number: picked from refs/pull/$number/head ($(git rev-parse --short FETCH_HEAD))"
        else
            git cherry-pick --abort
            echo "prerequisite #$number: does not pick cleanly, $why"
        fi
    else
        echo "prerequisite #$number: missing, and VERL_SRC has no refs/pull/$number/head; $why"
    fi
done

tests_of() { sed -n 's|^+++ b/\(tests/.*_on_cpu\.py\)$|\1|p' "$1"; }
run_tests() { PYTHONPATH="$tree" "$PYTHON" -m pytest -q -p no:cacheprovider -W ignore::UserWarning "$@" 2>&1 | tail -n 1; }

failed=0
for patch in "$PATCHES_DIR"/[0-9][0-9]-*.patch; do
    name=$(basename "$patch" .patch)
    mapfile -t tests < <(tests_of "$patch")
    if ! git am --quiet --keep-non-patch "$patch" >/dev/null 2>&1; then
        git am --abort
        echo "$name: does not apply"
        failed=1
        continue
    fi
    result=$(run_tests "${tests[@]}")
    echo "$name: applies; ${tests[*]}: $result"
    [[ $result == *failed* || $result == *error* ]] && failed=1
    if [[ ${BASELINE:-0} == 1 ]]; then
        git checkout --quiet HEAD~1 && git checkout --quiet "@{-1}" -- "${tests[@]}"
        echo "$name: before the patch: $(run_tests "${tests[@]}")"
        git reset --quiet --hard && git checkout --quiet "@{-1}"
    fi
done
# verl's own tests of the code the patches change (and of the prerequisites), on the patched tree
existing=()
for test in tests/trainer/test_multi_trajectories_advantage_on_cpu.py tests/trainer/ppo/test_adv_estimator_kwargs_on_cpu.py \
    tests/trainer/ppo/test_checkpoint_callback_on_cpu.py tests/trainer/ppo/v1/test_checkpoint_callback_on_cpu.py \
    tests/trainer/ppo/v1/test_trainer_base_on_cpu.py; do
    [[ -e $test ]] && existing+=("$test")
done
result=$(run_tests "${existing[@]}")
echo "verl's existing tests (${existing[*]}): $result"
[[ $result == *failed* || $result == *error* ]] && failed=1
exit $failed
