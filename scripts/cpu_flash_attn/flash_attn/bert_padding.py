# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Pure-torch ``index_first_axis``, ``pad_input``, ``unpad_input`` and ``rearrange`` with flash-attn's signatures."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["index_first_axis", "pad_input", "rearrange", "unpad_input"]


def rearrange(*args, **kwargs):
    """``einops.rearrange`` (einops is imported at the first call, as few paths need it)."""
    from einops import rearrange as einops_rearrange

    return einops_rearrange(*args, **kwargs)


def index_first_axis(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """The rows ``indices`` of ``tensor``'s first axis."""
    return tensor[indices]


def pad_input(hidden_states: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """Scatter the unpadded tokens ``hidden_states`` back to a zero-padded (batch, seqlen, ...) tensor."""
    padded = hidden_states.new_zeros(batch * seqlen, *hidden_states.shape[1:])
    padded[indices] = hidden_states
    return padded.view(batch, seqlen, *hidden_states.shape[1:])


def unpad_input(hidden_states: torch.Tensor, attention_mask: torch.Tensor, unused_mask: torch.Tensor | None = None):
    """(tokens, their flat indices, cumulative sequence lengths, longest sequence, used lengths per sequence)."""
    kept = attention_mask if unused_mask is None else attention_mask + unused_mask
    lengths = kept.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(kept.flatten(), as_tuple=False).flatten()
    cu_seqlens = F.pad(torch.cumsum(lengths, dim=0, dtype=torch.int32), (1, 0))
    tokens = index_first_axis(hidden_states.reshape(-1, *hidden_states.shape[2:]), indices)
    return tokens, indices, cu_seqlens, int(lengths.max().item()), attention_mask.sum(dim=-1, dtype=torch.int32)
