# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The CPU backend's parts: verl internals it relies on, activation only on request, the rollout server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from verl_fair import cpu, patches
from verl_fair.cpu import plugin

PROBE = """
import os
import verl
from verl.plugin.platform import PlatformRegistry, get_platform
from verl.workers.rollout.base import _ROLLOUT_REGISTRY
import verl.workers.engine_workers as workers
print("cpu registered:", PlatformRegistry.get("cpu") is not None)
print("rollout registered:", ("transformers", "async") in _ROLLOUT_REGISTRY)
print("gloo:", getattr(workers.initialize_global_process_group_ray, "__verl_fair_patch__", None) is not None)
print("platform:", get_platform().device_name)
print("engine device:", os.environ.get("VERL_ENGINE_DEVICE"))
"""


def _probe(platform: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_")}
    if platform:
        env["VERL_PLATFORM"] = platform
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_nothing_activates_unless_the_run_asks():
    out = _probe(None)
    assert "cpu registered: False" in out and "rollout registered: False" in out and "gloo: False" in out
    assert "platform: cpu" not in out and "engine device: None" in out


def test_verl_platform_cpu_activates_platform_rollout_gloo_and_engines():
    out = _probe("cpu")
    assert "cpu registered: True" in out and "rollout registered: True" in out and "gloo: True" in out
    assert "platform: cpu" in out and "engine device: cuda" in out


ALONE = (
    PROBE
    + """
import sys
fairness = sorted(m for m in sys.modules if m.startswith("verl_fair.") and not m.startswith("verl_fair.cpu")
                  and m != "verl_fair.patches")
print("fairness modules:", fairness)
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
print("fair_grpo:", "fair_grpo" in ADV_ESTIMATOR_REGISTRY)
"""
)


def test_cpu_backend_is_a_plugin_of_its_own():
    """Loaded as the only plugin, it works and imports none of the fairness code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_")}
    env.update(VERL_PLATFORM="cpu", VERL_USE_EXTERNAL_PLUGINS="verl_fair_cpu")
    result = subprocess.run([sys.executable, "-c", ALONE], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cpu registered: True" in result.stdout and "gloo: True" in result.stdout
    assert "fairness modules: []" in result.stdout and "fair_grpo: False" in result.stdout


GLOO = """
import os
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533", RANK="0", WORLD_SIZE="1")
import verl, torch.distributed as dist
from verl.utils.distributed import initialize_global_process_group_ray
from verl.utils.device import get_torch_device
initialize_global_process_group_ray()
print(dist.get_backend(), get_torch_device().current_device(), get_torch_device().memory_reserved())
"""


def test_process_group_is_plain_gloo_on_the_host():
    result = subprocess.run(
        [sys.executable, "-c", GLOO],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VERL_PLATFORM": "cpu"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["gloo", "cpu", "0"]


def test_activation_is_idempotent_and_undoable(monkeypatch):
    import verl.utils.distributed as distributed
    from verl.plugin.platform import PlatformRegistry
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    registries = (PlatformRegistry._platforms, _ROLLOUT_REGISTRY, RolloutReplicaRegistry._registry)
    saved = [dict(registry) for registry in registries]
    original = distributed.initialize_global_process_group_ray
    for name in cpu.ENGINE_ENV:
        monkeypatch.setenv(name, "unchanged")  # set by the user: activation keeps it
    try:
        plugin.activate()
        wrapped = distributed.initialize_global_process_group_ray
        plugin.activate()
        assert distributed.initialize_global_process_group_ray is wrapped
        assert wrapped.__wrapped__ is original
        assert all(os.environ[name] == "unchanged" for name in cpu.ENGINE_ENV)
        assert RolloutReplicaRegistry.get(cpu.ROLLOUT_NAME).__name__ == "TransformersReplica"
    finally:
        patches.unwrap("verl.utils.distributed", "initialize_global_process_group_ray", plugin._gloo)  # and callers
        for registry, before in zip(registries, saved, strict=True):
            registry.clear()
            registry.update(before)
    assert distributed.initialize_global_process_group_ray is original


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from verl.workers.config import HFModelConfig, RolloutConfig

    from verl_fair.cpu.rollout import TransformersServer
    from verl_fair.demo import model

    folder = tmp_path_factory.mktemp("tiny")
    tokenizer = model.train_tokenizer(["is the answer yes or no", "\\boxed{yes}", "\\boxed{no}"] * 20, vocab_size=300)
    lm = model.random_model(tokenizer, seed=0)
    lm.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return TransformersServer(
        RolloutConfig(name="transformers", prompt_length=16, response_length=6),
        HFModelConfig(path=str(folder)),
        replica_rank=0,
    )


def test_server_log_probs_are_the_trainers(server):
    """Sampled tokens' log-probs equal a teacher-forced forward pass at the same temperature."""
    torch.manual_seed(0)
    prompt = [5, 6, 7, 8]
    tokens, log_probs = server._generate(prompt, {"temperature": 0.7, "top_p": 1.0, "top_k": -1, "logprobs": True})
    assert 1 <= len(tokens) <= 6 and len(log_probs) == len(tokens)
    eos = server.model.generation_config.eos_token_id
    assert eos not in tokens[:-1]  # cut at the first EOS, inclusive
    with torch.no_grad():
        logits = server.model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1 : -1] / 0.7
    expected = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)
    torch.testing.assert_close(torch.tensor(log_probs), expected, atol=1e-4, rtol=1e-4)


def test_server_greedy_is_deterministic_and_honours_max_tokens(server):
    greedy = {"temperature": 0, "top_p": 1.0, "top_k": -1, "logprobs": False}
    first, none = server._generate([5, 6, 7], dict(greedy))
    assert none is None and first == server._generate([5, 6, 7], dict(greedy))[0]
    assert len(server._generate([5, 6, 7], {**greedy, "max_tokens": 2, "ignore_eos": True})[0]) == 2
    # never past the response length, nor past the prompt + response budget
    assert len(server._generate([5, 6, 7], {**greedy, "max_tokens": 50, "ignore_eos": True})[0]) == 6
    assert len(server._generate(list(range(5, 24)), {**greedy, "ignore_eos": True})[0]) == 3  # 16 + 6 - 19


def test_server_loads_trained_weights_and_rejects_foreign_ones(server):
    state = {name: tensor + 0.01 for name, tensor in server.model.state_dict().items()}
    server.load_weights(state, global_steps=7)
    assert server.global_steps == 7
    torch.testing.assert_close(server.model.state_dict()["model.norm.weight"], state["model.norm.weight"])
    with pytest.raises(ValueError, match="does not have"):
        server.load_weights({"vision_tower.weight": torch.zeros(1)})


# images: the tiny Qwen2.5-VL (random weights), the Pillow-only dataset path and the server


@pytest.fixture(scope="module")
def vlm_folder(tmp_path_factory):
    from verl_fair.demo import vlm

    folder = tmp_path_factory.mktemp("tiny_vlm")
    processor = vlm.processor(vlm.train_tokenizer(["Is there a nodule? \\boxed{nodule} \\boxed{normal}"] * 20, 300))
    vlm.random_model(processor.tokenizer, seed=0).save_pretrained(folder)
    processor.save_pretrained(folder)
    vlm.check_folder(folder)
    return folder


@pytest.fixture(scope="module")
def vlm_server(vlm_folder):
    from verl.workers.config import HFModelConfig, RolloutConfig

    from verl_fair.cpu.rollout import TransformersServer

    return TransformersServer(
        RolloutConfig(name="transformers", prompt_length=160, response_length=6),
        HFModelConfig(path=str(vlm_folder), trust_remote_code=True),
        replica_rank=0,
    )


def _scan(height: int, width: int, seed: int):
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8), mode="L")


def _image_prompt(server, images) -> tuple[list, list[int]]:
    """The resized images and the prompt ids verl's agent loop sends for a chat with ``images``: the
    Pillow-only dataset path, then verl's Qwen2.5-VL prompt builder (image pads expanded)."""
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    from verl_fair.cpu.vision import extract_images

    parts = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": "Is there a nodule?"}]
    messages = [{"role": "user", "content": parts}]
    resized = extract_images(messages, image_patch_size=14)
    builder = create_continuous_token_builder(
        server.model_config.tokenizer, hf_model_type="qwen2_5_vl", processor=server.processor
    )
    return resized, builder.build_initial_tokens(messages, images=resized)


def test_verl_loads_the_image_only_processor_only_with_remote_code(vlm_folder):
    """verl binds Qwen2.5-VL's M-RoPE get_rope_index to it; without trust_remote_code it gets no processor."""
    from verl.utils.tokenizer import hf_processor

    processor = hf_processor(str(vlm_folder), trust_remote_code=True)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor" and hasattr(processor, "get_rope_index")
    assert (vlm_folder / "vlm_processor.py").is_file()
    with pytest.warns(UserWarning, match="Failed to create processor"):
        assert hf_processor(str(vlm_folder), trust_remote_code=False) is None


def test_server_image_log_probs_are_the_trainers(vlm_server):
    """Sampled tokens' log-probs on an image prompt equal a teacher-forced forward pass with the inputs
    verl's agent loop computes for the trainer: its multi_modal_inputs and its M-RoPE position ids."""
    from types import SimpleNamespace

    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    images, prompt = _image_prompt(vlm_server, [_scan(100, 128, 1), _scan(56, 84, 2)])
    processor = vlm_server.processor
    pads = prompt.count(processor.image_token_id)
    assert pads == (4 * 5 + 2 * 3)  # 112 x 140 and 56 x 84 pixels: 4 x 5 and 2 x 3 merged patches
    torch.manual_seed(0)
    params = {"temperature": 0.7, "top_p": 1.0, "top_k": -1, "logprobs": True, "ignore_eos": True}
    tokens, log_probs = vlm_server._generate(prompt, params, images)
    assert len(tokens) == 6 and not set(tokens) & set(vlm_server.banned_token_ids)

    worker = SimpleNamespace(processor=processor, tokenizer=vlm_server.model_config.tokenizer)
    ids = torch.tensor([prompt + tokens])
    mask = torch.ones_like(ids)
    output = SimpleNamespace(multi_modal_data={"images": images}, mm_processor_kwargs={})
    inputs = AgentLoopWorker._compute_multi_modal_inputs(worker, output, ids)
    positions = AgentLoopWorker._compute_position_ids(worker, ids, mask, dict(inputs))  # (1, 4, L)
    assert not torch.equal(positions[0, 1], positions[0, 0])  # M-RoPE: the image shifts the positions
    with torch.no_grad():
        logits = vlm_server.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions.transpose(0, 1),  # (4, 1, L), as verl's engine passes them
            pixel_values=inputs["pixel_values"],
            image_grid_thw=inputs["image_grid_thw"],
        ).logits[0, len(prompt) - 1 : -1]
    expected = torch.log_softmax(logits.float() / 0.7, -1).gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)
    torch.testing.assert_close(torch.tensor(log_probs), expected, atol=1e-4, rtol=1e-4)
    assert vlm_server.counts.image_requests >= 1 and vlm_server.counts.image_tokens >= pads


def test_server_checks_image_placeholders_against_the_images(vlm_server):
    images, prompt = _image_prompt(vlm_server, [_scan(56, 56, 3)])
    pad = vlm_server.processor.image_token_id
    greedy = {"temperature": 0, "logprobs": False}
    assert prompt.count(pad) == 4
    short = list(prompt)
    short.remove(pad)
    with pytest.raises(ValueError, match="3 image placeholder tokens, its 1 image"):
        vlm_server._generate(short, dict(greedy), images)
    with pytest.raises(ValueError, match="4 image placeholder tokens, its 2 image"):
        vlm_server._generate(prompt, dict(greedy), images * 2)
    with pytest.raises(ValueError, match="but the request no images"):
        vlm_server._generate(prompt, dict(greedy))
    tokenizer = vlm_server.model_config.tokenizer
    chat = [{"role": "user", "content": "Is there a nodule?"}]
    text = tokenizer(tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False))["input_ids"]
    assert vlm_server._generate(text, dict(greedy))[0]  # a text prompt to the vision-language model


@pytest.mark.parametrize(("field", "message"), [("video_data", "has video"), ("audio_data", "has audio")])
def test_server_refuses_video_and_audio(vlm_server, field, message):
    import asyncio

    with pytest.raises(NotImplementedError, match=message):
        asyncio.run(vlm_server.generate([5, 6], {"temperature": 0}, request_id="r", **{field: [object()]}))


def test_text_server_refuses_images(server):
    with pytest.raises(NotImplementedError, match="no processor"):
        server._generate([5, 6, 7], {"temperature": 0}, [_scan(56, 56, 0)])


def test_pil_dataset_path_resizes_as_qwen_vl_utils_and_refuses_video():
    from verl_fair.cpu.vision import extract_images, fit_to_grid

    assert fit_to_grid(100, 128, 28, 4 * 784, 16384 * 784) == (112, 140)  # rounded to the 28-pixel grid
    assert fit_to_grid(20, 30, 28, 4 * 784, 16384 * 784) == (56, 84)  # up to at least 4 tokens
    assert fit_to_grid(1000, 1000, 28, 4 * 784, 64 * 784) == (224, 224)  # down to at most max_pixels
    with pytest.raises(ValueError, match="aspect ratio"):
        fit_to_grid(1, 300, 28, 4 * 784, 16384 * 784)
    rgba = _scan(50, 60, 4).convert("RGBA")
    (image,) = extract_images([{"role": "user", "content": [{"type": "image", "image": rgba, "max_pixels": 3136}]}])
    assert image.mode == "RGB" and image.size == (56, 56)
    with pytest.raises(NotImplementedError, match="videos need torchvision"):
        extract_images([{"role": "user", "content": [{"type": "video", "video": "clip.mp4"}]}])
