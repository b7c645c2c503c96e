# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""A tiny causal LM that answers ``\\boxed{ <label> }`` after a token prompt.

A random-init Llama (``transformers``; 1 layer, hidden 32, initialiser std 0.2, a word-level vocabulary of the task's
tokens), warm-started by teacher forcing so that its answers are well formed, then trained by RL.
A prompt is ``Q: <tokens> A:``; a response is ``\\boxed{ <label> } <eos>`` (4 tokens), decoded with
spaces, which the clinical reward parses like any model output. Sampling (temperature 1, or greedy)
uses the KV cache and returns per-token log-probs; every prompt of a task has the same length.
"""

from __future__ import annotations

import torch

from benchmarks.efficacy.tasks import Case

SPECIALS = ["<pad>", "<eos>", "Q:", "A:", "\\boxed{", "}"]
RESPONSE_LENGTH = 4
EOS = 1


class Vocabulary:
    def __init__(self, cases: list[Case], labels: tuple[str, ...]) -> None:
        tokens = sorted({t for c in cases for t in c.tokens} | set(labels))
        self.itos = SPECIALS + tokens
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def prompts(self, cases: list[Case]) -> torch.Tensor:
        """``(len(cases), prompt length)`` token ids."""
        return torch.tensor([[self.stoi["Q:"], *(self.stoi[t] for t in c.tokens), self.stoi["A:"]] for c in cases])

    def answer(self, label: str) -> list[int]:
        return [self.stoi["\\boxed{"], self.stoi[label], self.stoi["}"], EOS]

    def decode(self, ids: list[int]) -> str:
        words = []
        for i in ids:
            if i == EOS:
                break
            words.append(self.itos[i])
        return " ".join(words)


def tiny_model(vocab_size: int, seed: int, hidden: int = 32, layers: int = 1):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        pad_token_id=0,
        eos_token_id=EOS,
        bos_token_id=2,
        tie_word_embeddings=True,
        initializer_range=0.2,  # verl's models are pretrained; from 0.02 a tiny one sits on a plateau for ~100 steps
    )
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config)


def warm_start(model, vocab: Vocabulary, cases: list[Case], epochs: int, seed: int, lr: float = 3e-3) -> None:
    """Teacher-forced training on ``cases`` (prompt -> boxed gold label), batches of 32."""
    generator = torch.Generator().manual_seed(seed)
    prompts = vocab.prompts(cases)
    answers = torch.tensor([vocab.answer(c.label) for c in cases])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(cases), generator=generator).split(32):
            ids = torch.cat([prompts[batch], answers[batch]], dim=1)
            labels = ids.clone()
            labels[:, : prompts.shape[1]] = -100
            loss = model(input_ids=ids, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@torch.no_grad()
def sample(model, prompts: torch.Tensor, generator: torch.Generator | None, greedy: bool = False):
    """Responses ``(B, RESPONSE_LENGTH)``, their log-probs and response mask (tokens up to and with eos)."""
    model.eval()
    out = model(input_ids=prompts, use_cache=True)
    tokens, log_probs = [], []
    for position in range(RESPONSE_LENGTH):
        distribution = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        if greedy:
            choice = distribution.argmax(dim=-1)
        else:
            choice = torch.multinomial(distribution.exp(), 1, generator=generator).squeeze(-1)
        tokens.append(choice)
        log_probs.append(distribution.gather(-1, choice[:, None]).squeeze(-1))
        if position + 1 < RESPONSE_LENGTH:
            out = model(input_ids=choice[:, None], past_key_values=out.past_key_values, use_cache=True)
    responses = torch.stack(tokens, dim=1)
    return responses, torch.stack(log_probs, dim=1), response_mask(responses)


def response_mask(responses: torch.Tensor) -> torch.Tensor:
    """1 up to and including the first eos (int64, as verl's)."""
    is_eos = (responses == EOS).long()
    return ((is_eos.cumsum(dim=1) - is_eos) == 0).long()


def response_log_probs(model, prompts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
    """Log-probs of ``responses`` under the model, with gradients, ``(B, RESPONSE_LENGTH)``."""
    model.train()
    ids = torch.cat([prompts, responses], dim=1)
    logits = model(input_ids=ids).logits[:, prompts.shape[1] - 1 : -1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, responses[..., None]).squeeze(-1)
