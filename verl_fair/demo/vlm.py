# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""A tiny Qwen2.5-VL for CPU runs with images, built offline in seconds: no model hub, no torchvision.

- tokenizer: the text demo's byte-level BPE (:func:`verl_fair.demo.model.train_tokenizer`, the same
  ``<|endoftext|>`` / ``<|im_start|>`` / ``<|im_end|>`` as the Qwen family) plus Qwen2.5-VL's vision
  tokens ``<|vision_start|>`` ``<|vision_end|>`` ``<|vision_pad|>`` ``<|image_pad|>`` ``<|video_pad|>``,
  with the family's chat template (a default system turn, ``<|vision_start|><|image_pad|><|vision_end|>``
  per image);
- processor: the image-only ``Qwen2_5_VLProcessor`` of :mod:`verl_fair.demo.vlm_processor` (copied into
  the model folder; verl loads it with ``actor_rollout_ref.model.trust_remote_code=True``) around
  transformers' Pillow image processor, 4 to 64 image tokens per image (56 x 56 to 224 x 224 pixels);
- model: a random ``Qwen2_5_VLForConditionalGeneration`` (text: hidden 64, 2 layers, 4 / 2 heads, M-RoPE
  sections [2, 3, 3]; vision: 2 blocks, hidden 32, patch 14, merge 2; tied embeddings; about 0.2 M
  parameters), warm-started for about half a minute on the task's historical reads, so that answers are
  well formed, the model reads the scans (with blank images it does no better than chance) and inherits
  the reads' blind spot: it calls most women's nodules normal, yet samples ``nodule`` for them often
  enough that rewards vary.

Model, processor (with the tokenizer and chat template) and generation config go to one folder with
``save_pretrained``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch

from verl_fair.demo import model as text_model
from verl_fair.demo.model import Example

VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
SYSTEM = "You are a helpful assistant."
# Qwen2.5-VL's chat format, written with expressions only so that no whitespace control is needed
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\n" + SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}"
    "{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- endif -%}"
)
# Qwen2.5-VL's image geometry, so that verl's defaults apply unchanged
PATCH, MERGE, TEMPORAL = 14, 2, 2
MIN_TOKENS, MAX_TOKENS = 4, 64
MAX_LENGTH = 1024

# what a CPU run of main_ppo needs for this model, on top of verl_fair.cpu.HYDRA_OVERRIDES
HYDRA_OVERRIDES = (
    # the image-only processor's code is in the model folder
    "actor_rollout_ref.model.trust_remote_code=True",
    # verl's remove-padding patch swaps Qwen2.5-VL's attention for a flash-attention-only one
    "actor_rollout_ref.model.use_remove_padding=False",
    # images through Pillow: qwen-vl-utils needs torchvision
    "data.custom_cls.path=pkg://verl_fair.cpu.vision",
    "data.custom_cls.name=PilVisionRLHFDataset",
)


def train_tokenizer(texts: Sequence[str], vocab_size: int = 1024):
    """The text demo's tokenizer trained on ``texts``, with the vision tokens and the Qwen2.5-VL chat template."""
    tokenizer = text_model.train_tokenizer([SYSTEM, *texts], vocab_size=vocab_size)
    tokenizer.add_special_tokens({"additional_special_tokens": list(VISION_TOKENS)})
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = MAX_LENGTH
    return tokenizer


def processor(tokenizer):
    """The image-only processor around transformers' Pillow image processor (no torchvision)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from verl_fair.demo.vlm_processor import Qwen2_5_VLProcessor

    Qwen2_5_VLProcessor.register_for_auto_class("AutoProcessor")  # save_pretrained copies its module + auto_map
    factor = PATCH * MERGE
    images = Qwen2VLImageProcessorPil(
        size={"shortest_edge": MIN_TOKENS * factor**2, "longest_edge": MAX_TOKENS * factor**2},
        patch_size=PATCH,
        temporal_patch_size=TEMPORAL,
        merge_size=MERGE,
    )
    return Qwen2_5_VLProcessor(image_processor=images, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def random_model(tokenizer, seed: int):
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in VISION_TOKENS}
    torch.manual_seed(seed)
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=MAX_LENGTH,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=None,
            tie_word_embeddings=True,
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            in_channels=3,
            patch_size=PATCH,
            spatial_merge_size=MERGE,
            temporal_patch_size=TEMPORAL,
            window_size=112,  # 4 x 4 merged tokens per attention window, as in the real model
            fullatt_block_indexes=[1],
            out_hidden_size=64,  # the text hidden size
            tokens_per_second=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = "sdpa"
    vlm = Qwen2_5_VLForConditionalGeneration(config)
    vlm.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return vlm


def images_of(example: Example) -> list:
    """The PIL images of an example's message parts, in order."""
    return [
        part["image"]
        for message in example.messages
        if isinstance(message["content"], list)
        for part in message["content"]
        if part.get("type") == "image"
    ]


def encode(processor, example: Example) -> dict[str, torch.Tensor]:
    """An example's prompt (image pads expanded) followed by its answer and EOS: ``input_ids`` (L,),
    ``labels`` (L,, -100 on the prompt), ``pixel_values`` (patches, 1176) and ``image_grid_thw`` (images, 3)."""
    tokenizer = processor.tokenizer
    text = tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=False)
    images = [image.convert("RGB") for image in images_of(example)]
    features = processor(text=[text], images=images, return_tensors="pt")
    prompt = features["input_ids"][0]
    answer = torch.tensor(tokenizer(example.answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
    return {
        "input_ids": torch.cat([prompt, answer]),
        "labels": torch.cat([torch.full_like(prompt, -100), answer]),
        "pixel_values": features["pixel_values"],
        "image_grid_thw": features["image_grid_thw"],
    }


def collate(rows: Sequence[dict[str, torch.Tensor]], pad_id: int, image_id: int) -> dict[str, torch.Tensor]:
    """Right-padded model inputs of encoded rows, with ``mm_token_type_ids`` (1 on image pads) so that the
    model computes M-RoPE positions."""
    width = max(len(row["input_ids"]) for row in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        length = len(row["input_ids"])
        ids[i, :length], labels[i, :length], mask[i, :length] = row["input_ids"], row["labels"], 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "pixel_values": torch.cat([row["pixel_values"] for row in rows]),
        "image_grid_thw": torch.cat([row["image_grid_thw"] for row in rows]),
        "mm_token_type_ids": (ids == image_id).int(),
    }


def warm_start(
    vlm, processor, examples: Sequence[Example], epochs: int, seed: int, lr: float = 3e-3, batch_size: int = 16
) -> None:
    """Teacher-forced training on image prompt -> answer (loss on the answer only), the learning rate
    decaying linearly to 0 so that the model settles on what the examples teach. On one thread: for a
    model this small more threads only wait on each other (five times slower on a busy 2-core host)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train(vlm, processor, examples, epochs, seed, lr, batch_size)
    finally:
        torch.set_num_threads(threads)


def _train(vlm, processor, examples: Sequence[Example], epochs: int, seed: int, lr: float, batch_size: int) -> None:
    rows = [encode(processor, example) for example in examples]
    pad_id, image_id = processor.tokenizer.pad_token_id, processor.image_token_id
    optimizer = torch.optim.AdamW(vlm.parameters(), lr=lr)
    steps = epochs * -(-len(rows) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    order = random.Random(seed)
    vlm.train()
    for _ in range(epochs):
        order.shuffle(rows)
        for start in range(0, len(rows), batch_size):
            loss = vlm(**collate(rows[start : start + batch_size], pad_id, image_id)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    vlm.eval()


def build(folder: str | Path, examples: Sequence[Example], epochs: int = 20, seed: int = 0) -> Path:
    """Train the tokenizer, warm-start the model on ``examples`` (image prompts) and save model, processor,
    tokenizer and the processor's code to ``folder``; checks that the folder loads."""
    folder = Path(folder)
    texts = [
        part["text"]
        for example in examples
        for message in example.messages
        for part in (message["content"] if isinstance(message["content"], list) else [{"text": message["content"]}])
        if "text" in part
    ] + [example.answer for example in examples]
    vlm_processor = processor(train_tokenizer(texts))
    vlm = random_model(vlm_processor.tokenizer, seed)
    warm_start(vlm, vlm_processor, examples, epochs, seed)
    folder.mkdir(parents=True, exist_ok=True)
    vlm.save_pretrained(folder)
    vlm_processor.save_pretrained(folder)  # tokenizer, chat template, processor_config.json and the processor's .py
    check_folder(folder)
    return folder


def check_folder(folder: Path) -> None:
    """Load the folder's processor as verl will (remote code); RuntimeError when it is not the image-only class.

    Also puts the processor's code into transformers' module cache once, before a run's processes load it.
    """
    from transformers import AutoProcessor

    loaded = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    if type(loaded).__name__ != "Qwen2_5_VLProcessor" or hasattr(loaded, "video_processor"):
        raise RuntimeError(f"{folder}: the processor loads as {type(loaded).__name__}, not the image-only one")
