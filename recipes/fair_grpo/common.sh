#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# Shared by the run_*.sh recipes: one set of hyperparameters for every method (matched baselines), kept in
# config/fair_grpo_clinical.yaml; this file adds what comes from the environment.
# Usage (from a run script): run_recipe METHOD [Hydra overrides ...], after setting MODEL_ARGS and MODEL_NAME.
set -euo pipefail
RECIPE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

DATA_DIR=${DATA_DIR:-data}
TRAIN_FILES=${TRAIN_FILES:-"[$DATA_DIR/chexpert/train.parquet,$DATA_DIR/hemorrhage/train.parquet,$DATA_DIR/vindr/train.parquet,$DATA_DIR/isic2020/train.parquet,$DATA_DIR/ham10000/train.parquet,$DATA_DIR/pad_ufes_20/train.parquet,$DATA_DIR/covid_blues/train.parquet]"}
BALANCED_TRAIN_FILES=${BALANCED_TRAIN_FILES:-${TRAIN_FILES//train.parquet/train_balanced.parquet}}
VAL_FILES=${VAL_FILES:-${TRAIN_FILES//train.parquet/val.parquet}}
OUTPUT_DIR=${OUTPUT_DIR:-outputs}
# the cluster: RAY_ADDRESS (read by ray.init itself; unset: a one-node Ray started for the run), NNODES nodes
# with N_GPUS_PER_NODE GPUs each (GPUS_PER_NODE is the older name)
NNODES=${NNODES:-1}
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-${GPUS_PER_NODE:-4}}
PROJECT=${PROJECT:-verl_fair}
LOGGER=${LOGGER:-"[console,wandb]"}
EPOCHS=${EPOCHS:-1}
SAVE_FREQ=${SAVE_FREQ:-20}
TEST_FREQ=${TEST_FREQ:-5}
# the inference backend of the rollout (vllm or sglang; the train backend is the script name's suffix)
INFER_BACKEND=${INFER_BACKEND:-vllm}

# The paper's settings (batch 512 prompts, mini-batch 128, 4096/4096 tokens, KL loss off) are in the config.
COMMON_ARGS=(
    "data.train_files=$TRAIN_FILES" "data.val_files=$VAL_FILES" "actor_rollout_ref.rollout.name=$INFER_BACKEND"
    "trainer.nnodes=$NNODES" "trainer.n_gpus_per_node=$N_GPUS_PER_NODE" "trainer.total_epochs=$EPOCHS"
    "trainer.save_freq=$SAVE_FREQ" "trainer.test_freq=$TEST_FREQ" "trainer.project_name=$PROJECT"
    "trainer.logger=$LOGGER"
)

method_args() {  # the only lines that differ between methods
    case "$1" in
        fair_grpo)            echo algorithm.adv_estimator=fair_grpo ;;
        fair_grpo_label_free) echo algorithm.adv_estimator=fair_grpo algorithm.fair_grpo.labels=none ;;
        group_dro)            echo algorithm.adv_estimator=fair_grpo algorithm.fair_grpo.weighting=group_dro ;;
        grpo)                 echo algorithm.adv_estimator=grpo ;;
        grpo_resampling)      echo algorithm.adv_estimator=grpo "data.train_files=$BALANCED_TRAIN_FILES" ;;
        rloo)                 echo algorithm.adv_estimator=rloo ;;
        reinforce_pp)         echo algorithm.adv_estimator=reinforce_plus_plus ;;
        *) echo "unknown method '$1': fair_grpo, fair_grpo_label_free, group_dro, grpo, grpo_resampling, rloo, reinforce_pp" >&2
           return 2 ;;
    esac
}

run_recipe() {
    local method=${1:-fair_grpo}
    shift || true
    local extra
    extra=$(method_args "$method")
    local experiment="${MODEL_NAME}_${method}"
    # verl finds the plugin by the entry point in its installed metadata; the checkout is not enough (cd /)
    if ! (cd / && python3 -c "from importlib.metadata import version; version('verl-fair')" 2>/dev/null); then
        echo "verl-fair is not installed for $(command -v python3): install it beside verl on every node" \
             "(pip install . in a clone of verl-fair, or its wheel; recipes/fair_grpo/README.md)" >&2
        return 2
    fi
    local command=(python3 -m verl.trainer.main_ppo --config-path="$RECIPE_DIR/config" --config-name=fair_grpo_clinical
                   "${COMMON_ARGS[@]}" "${MODEL_ARGS[@]}" $extra
                   "trainer.experiment_name=$experiment"
                   "trainer.default_local_dir=$OUTPUT_DIR/$experiment/checkpoints"
                   "trainer.validation_data_dir=$OUTPUT_DIR/$experiment/validation"
                   "$@")
    local cluster="a one-node Ray started for this run"
    [[ -n "${RAY_ADDRESS:-}" ]] && cluster="the Ray cluster at $RAY_ADDRESS"
    echo "running on $cluster: $NNODES node(s) x $N_GPUS_PER_NODE GPU(s)" >&2
    if [[ "${DRY_RUN:-}" == print ]]; then  # the command, one argument per line
        printf '%s\n' "${command[@]}"
    elif [[ -n "${DRY_RUN:-}" ]]; then  # compose the full configuration against the installed verl, run nothing
        "${command[@]}" --cfg job
    else
        "${command[@]}"
    fi
}
