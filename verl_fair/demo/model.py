# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""A tiny causal LM for CPU runs, built offline in seconds: no model hub.

A byte-level BPE tokenizer trained on the task's own prompts, with a ChatML chat template (EOS
``<|im_end|>``, pad ``<|endoftext|>``); a random 2-layer Qwen2 (hidden 64, about 0.2 M parameters);
and a short supervised warm start on the task's historical records, so that answers are well formed
(``\\boxed{<diagnosis>}``) and the model starts out with the records' mistakes. Model, tokenizer and
generation config are saved with ``save_pretrained`` to one folder that verl loads like any Hugging Face
model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

PAD, BOS, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class Example:
    """A chat prompt, the answer to teach and the group it belongs to."""

    messages: list[dict]
    answer: str
    group: str


def train_tokenizer(texts: Sequence[str], vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS,
        pad_token=PAD,
        bos_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=1024,
    )


def random_model(tokenizer, seed: int, heads: int = 4):
    """``heads`` attention heads (2 KV heads) over hidden size 64: 4 heads of 16, or 2 of 32 (vLLM's CPU
    attention takes head sizes of 32 and more)."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        attn_implementation="sdpa",
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return model


def warm_start(
    model, tokenizer, examples: Sequence[Example], epochs: int, seed: int, lr: float = 3e-3, batch_size: int = 16
) -> None:
    """Teacher-forced training on prompt -> answer (loss on the answer only)."""
    rows = []
    for example in examples:
        text = tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=False)
        prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
        answer = tokenizer(example.answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((prompt, answer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    order = random.Random(seed)
    model.train()
    for _ in range(epochs):
        order.shuffle(rows)
        for start in range(0, len(rows), batch_size):
            ids, labels, mask = _batch(rows[start : start + batch_size], tokenizer.pad_token_id)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()


def _batch(rows, pad_id: int):
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (prompt, answer) in enumerate(rows):
        sequence = prompt + answer
        ids[i, : len(sequence)] = torch.tensor(sequence)
        labels[i, len(prompt) : len(sequence)] = torch.tensor(answer)
        mask[i, : len(sequence)] = 1
    return ids, labels, mask


def build(folder: str | Path, examples: Sequence[Example], epochs: int = 12, seed: int = 0, heads: int = 4) -> Path:
    """Train the tokenizer on ``examples``, warm-start the model (``heads`` attention heads) on them and save both
    to ``folder``."""
    folder = Path(folder)
    texts = [m["content"] for e in examples for m in e.messages] + [e.answer for e in examples]
    tokenizer = train_tokenizer(texts)
    model = random_model(tokenizer, seed, heads)
    warm_start(model, tokenizer, examples, epochs, seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
