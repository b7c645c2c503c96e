# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""A vLLM worker extension for the negative control of tests/test_e2e_vllm.py: it receives every weight bucket
verl sends after a training step but loads none, so vLLM keeps generating with its start-up weights."""

from __future__ import annotations

from verl_fair.cpu.vllm_worker import CPUWorkerExtension


class ReceiveOnlyWorkerExtension(CPUWorkerExtension):
    def _update_weights(self, weights, peft_config, base_sync_done) -> None:
        return None
