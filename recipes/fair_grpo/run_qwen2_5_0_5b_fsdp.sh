#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# The one-GPU smoke test: Qwen2.5-0.5B-Instruct (or MODEL_PATH), small batches, 3 steps and a validation, to
# check a cluster end to end (plugin loaded in every worker, metadata sampler, reward, checkpoint with
# verl_fair_state.npz). Reads $DATA_DIR/smoke/{train,val}.parquet (SMOKE_TRAIN_FILES, SMOKE_VAL_FILES).
#   MODEL_PATH=Qwen/Qwen2.5-0.5B-Instruct DATA_DIR=data bash recipes/fair_grpo/run_qwen2_5_0_5b_fsdp.sh [METHOD]
NNODES=${NNODES:-1} N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-1}
source "$(dirname "$0")/common.sh"
MODEL_NAME=smoke
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-0.5B-Instruct}
TRAIN_FILES=${SMOKE_TRAIN_FILES:-"[$DATA_DIR/smoke/train.parquet]"}
VAL_FILES=${SMOKE_VAL_FILES:-"[$DATA_DIR/smoke/val.parquet]"}
COMMON_ARGS+=("data.train_files=$TRAIN_FILES" "data.val_files=$VAL_FILES")
MODEL_ARGS=(
    "actor_rollout_ref.model.path=$MODEL_PATH"
    "actor_rollout_ref.actor.optim.lr=${LR:-1e-6}" "actor_rollout_ref.rollout.n=${ROLLOUT_N:-4}"
    data.train_batch_size=16 actor_rollout_ref.actor.ppo_mini_batch_size=8
    data.max_prompt_length=1024 data.max_response_length=512
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8
    actor_rollout_ref.rollout.tensor_model_parallel_size=1
    trainer.total_training_steps=3 trainer.save_freq=3 trainer.test_freq=3
    "trainer.logger=[console]"
)
run_recipe "$@"
