#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# EXPERIMENTAL: MedGemma-4B (google/medgemma-4b-it). verl 0.9.1 does not validate Gemma3 multimodal training
# (upstream issue #6341: no Gemma3 processor mapping or model patch; it falls back to a generic builder).
# Run the one-GPU smoke test with it first (MODEL_PATH=google/medgemma-4b-it bash run_qwen2_5_0_5b_fsdp.sh)
# and compare its rewards with Qwen's before a long run.
#   bash recipes/fair_grpo/run_medgemma_4b_fsdp.sh [METHOD] [Hydra overrides ...]
source "$(dirname "$0")/common.sh"
MODEL_NAME=medgemma_4b
MODEL_PATH=${MODEL_PATH:-google/medgemma-4b-it}
MODEL_ARGS=(
    "actor_rollout_ref.model.path=$MODEL_PATH"
    "actor_rollout_ref.actor.optim.lr=${LR:-5e-7}"            # the authors' MedGemma FairGRPO value, for every method
    "actor_rollout_ref.rollout.n=${ROLLOUT_N:-10}"
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4
    actor_rollout_ref.model.use_remove_padding=False
)
run_recipe "$@"
