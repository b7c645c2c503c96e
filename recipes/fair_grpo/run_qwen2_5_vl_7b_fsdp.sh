#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# Qwen2.5-VL-7B-Instruct on the seven clinical datasets.
#   bash recipes/fair_grpo/run_qwen2_5_vl_7b_fsdp.sh [METHOD] [Hydra overrides ...]
# METHOD: fair_grpo (default), fair_grpo_label_free, group_dro, grpo, grpo_resampling, rloo, reinforce_pp.
# Environment: MODEL_PATH, DATA_DIR / TRAIN_FILES / VAL_FILES / BALANCED_TRAIN_FILES, OUTPUT_DIR, NNODES,
# N_GPUS_PER_NODE, RAY_ADDRESS, INFER_BACKEND, LR, ROLLOUT_N, PROJECT, LOGGER, EPOCHS, SAVE_FREQ, TEST_FREQ, DRY_RUN
# (see README.md).
source "$(dirname "$0")/common.sh"
MODEL_NAME=qwen2_5_vl_7b
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}
MODEL_ARGS=(
    "actor_rollout_ref.model.path=$MODEL_PATH"
    "actor_rollout_ref.actor.optim.lr=${LR:-1e-6}"           # the authors' Qwen FairGRPO value, for every method
    "actor_rollout_ref.rollout.n=${ROLLOUT_N:-5}"
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4
)
run_recipe "$@"
