"""A tiny causal LM that answers ``\\boxed{positive}`` or ``\\boxed{negative}`` after a token prompt.

Random init (2-layer Llama, hidden 64, a word-level vocabulary of the task's tokens), then a brief
supervised warm start so that answers are well formed; sampling returns per-token log-probs.
A prompt is ``Q: <tokens> A:``; a response is ``\\boxed{ <label> } <eos>`` (4 tokens), decoded with
spaces, which the clinical reward parses like any model output.
"""

from __future__ import annotations

import torch

from benchmarks.efficacy.tasks import LABELS, Case

SPECIALS = ["<pad>", "<eos>", "Q:", "A:", "\\boxed{", "}"]
RESPONSE_LENGTH = 4


class Vocabulary:
    def __init__(self, cases: list[Case]) -> None:
        tokens = sorted({t for c in cases for t in c.tokens} | set(LABELS))
        self.itos = SPECIALS + tokens
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.eos = self.stoi["<eos>"]

    def prompt(self, case: Case) -> list[int]:
        return [self.stoi["Q:"], *(self.stoi[t] for t in case.tokens), self.stoi["A:"]]

    def answer(self, label: str) -> list[int]:
        return [self.stoi["\\boxed{"], self.stoi[label], self.stoi["}"], self.eos]

    def decode(self, ids: list[int]) -> str:
        words = []
        for i in ids:
            if i == self.eos:
                break
            words.append(self.itos[i])
        return " ".join(words)


def tiny_model(vocab_size: int, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=True,
    )
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config)


def warm_start(model, vocab: Vocabulary, cases: list[Case], epochs: int, seed: int, lr: float = 3e-3) -> None:
    """Teacher-forced training on ``cases`` (prompt -> boxed label)."""
    generator = torch.Generator().manual_seed(seed)
    prompts = torch.tensor([vocab.prompt(c) for c in cases])
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
def sample(model, prompts: torch.Tensor, generator: torch.Generator, greedy: bool = False):
    """Responses ``(B, RESPONSE_LENGTH)``, their log-probs and response mask (tokens up to and with eos)."""
    model.eval()
    ids = prompts
    tokens, log_probs = [], []
    for _ in range(RESPONSE_LENGTH):
        logits = model(input_ids=ids).logits[:, -1].float()
        distribution = torch.log_softmax(logits, dim=-1)
        if greedy:
            choice = distribution.argmax(dim=-1)
        else:
            choice = torch.multinomial(distribution.exp(), 1, generator=generator).squeeze(-1)
        tokens.append(choice)
        log_probs.append(distribution.gather(-1, choice[:, None]).squeeze(-1))
        ids = torch.cat([ids, choice[:, None]], dim=1)
    responses = torch.stack(tokens, dim=1)
    return responses, torch.stack(log_probs, dim=1), response_mask(responses, eos=1)


def response_mask(responses: torch.Tensor, eos: int) -> torch.Tensor:
    """1 up to and including the first eos (int64, as verl's)."""
    after_eos = (responses == eos).long().cumsum(dim=1) - (responses == eos).long()
    return (after_eos == 0).long()


def response_log_probs(model, prompts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
    """Log-probs of ``responses`` under the model, with gradients, ``(B, RESPONSE_LENGTH)``."""
    model.train()
    ids = torch.cat([prompts, responses], dim=1)
    logits = model(input_ids=ids).logits[:, prompts.shape[1] - 1 : -1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, responses[..., None]).squeeze(-1)
