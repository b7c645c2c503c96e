# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The vLLM worker extension of the host (``engine_kwargs.vllm.worker_extension_cls``), imported only inside
vLLM's worker processes.

On CPU, vLLM repacks each linear layer's weight for oneDNN after loading and leaves an empty parameter
behind, so verl's weight sync (``model.load_weights`` after each training step) finds nothing to load into.
Turning oneDNN off in the worker, before the model loads, keeps reloadable weights and plain ``F.linear``.
"""

from __future__ import annotations

from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension
from vllm import _custom_ops


class CPUWorkerExtension(vLLMColocateWorkerExtension):
    """verl's colocated worker extension, with weights vLLM can reload on CPU."""

    def __new__(cls, **kwargs):
        _custom_ops._supports_onednn = False  # read when the model's linear layers are loaded
        return super().__new__(cls, **kwargs)
