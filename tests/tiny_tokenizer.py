# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""A byte-level BPE tokenizer trained in a second on a small corpus: no model hub needed."""

from __future__ import annotations

from functools import lru_cache

CORPUS = [
    "<think>The lungs look clear.</think> The answer is \\boxed{No Finding}.",
    "<answer>Pleural Effusion, Edema</answer> melanoma nevus carcinoma keratosis pneumonia",
    "Which conditions are present in this chest X-ray? Answer with the diagnosis.",
]


@lru_cache(maxsize=1)
def tiny_tokenizer():
    from verl_fair.demo.model import train_tokenizer

    return train_tokenizer(CORPUS * 20, vocab_size=400)
