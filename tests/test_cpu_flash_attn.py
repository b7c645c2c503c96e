# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The CPU stand-in for flash-attn that scripts/check_verl.sh puts on the path agrees with verl 0.9.1's own
pure-torch padding fallback."""

import importlib.util
from pathlib import Path

import pytest
import torch

# loaded from its file under another name, so that no other test finds a module named flash_attn
_PATH = Path(__file__).parents[1] / "scripts" / "cpu_flash_attn" / "flash_attn" / "bert_padding.py"
_SPEC = importlib.util.spec_from_file_location("cpu_flash_attn_bert_padding", _PATH)
bert_padding = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bert_padding)
attention_utils = pytest.importorskip("verl.utils.attention_utils")


@pytest.mark.parametrize("unused", [False, True], ids=["mask", "mask-and-unused"])
def test_the_stand_in_unpads_and_pads_as_verls_fallback(unused):
    if not hasattr(attention_utils, "_fallback_unpad_input"):
        pytest.skip("this verl has no pure-torch padding fallback to compare with")
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 5, 4, generator=generator)
    mask = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 1, 1]])
    extra = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0]]) if unused else None
    ours = bert_padding.unpad_input(hidden, mask, extra)
    verls = attention_utils._fallback_unpad_input(hidden, mask, extra)
    assert len(ours) == len(verls) == 5
    for mine, theirs in zip(ours, verls, strict=True):
        assert torch.equal(torch.as_tensor(mine), torch.as_tensor(theirs))
    tokens, indices = ours[0], ours[1]
    assert torch.equal(
        bert_padding.pad_input(tokens, indices, 3, 5), attention_utils._fallback_pad_input(tokens, indices, 3, 5)
    )
    kept = mask if extra is None else mask + extra
    assert torch.equal(bert_padding.pad_input(tokens, indices, 3, 5), hidden * kept.unsqueeze(-1))
