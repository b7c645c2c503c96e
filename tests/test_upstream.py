# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""docs/upstream.md item 1 applied as verl PR #7473 would: the estimator then reads ``non_tensor_batch`` itself
and gives the advantages the sampler path gives on the same batch. And the form of the patches in upstream/:
each a ``git format-patch`` mail adding a CPU test in verl's layout, with a PR description titled by verl's rule
(applying them needs a verl repository: ``upstream/apply_and_test.sh``)."""

from __future__ import annotations

import inspect
import re
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import Prompt, make_batch
from omegaconf import OmegaConf
from tq_harness import extra_info
from verl import DataProto
from verl.trainer.ppo import ray_trainer
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

import verl_fair.plugin  # noqa: F401  (registration, as the entry point does)
from verl_fair.config import FairGRPOConfig
from verl_fair.groups.labels import GroupLabeler
from verl_fair.integration import context
from verl_fair.integration.sampler import prompt_records

GDPO_ONLY = 'if adv_estimator in (AdvantageEstimator.GDPO, "gdpo"):'
BY_SIGNATURE = 'if {"non_tensor_batch", "batch"} & set(inspect.signature(adv_estimator_fn).parameters):'


def compute_advantage_with_pr_7473():
    """verl's own ``compute_advantage`` with the GDPO name check replaced by signature inspection."""
    source = inspect.getsource(ray_trainer.compute_advantage)
    assert source.count(GDPO_ONLY) == 1, "verl's compute_advantage changed: update docs/upstream.md item 1"
    namespace = {**vars(ray_trainer), "inspect": inspect}
    exec(compile(source.replace(GDPO_ONLY, BY_SIGNATURE), ray_trainer.__file__, "exec"), namespace)
    return namespace["compute_advantage"]


PROMPTS = [
    Prompt([1, 0, 1, 1], "cxr", "M,A3", uid=str(uuid.uuid4())),
    Prompt([1, 1, 0, 1], "cxr", "F,A2", uid=str(uuid.uuid4())),
    Prompt([0, 0, 1, 0], "cxr", "F,A2", uid=str(uuid.uuid4())),
    Prompt([1, 0, 0, 0], "derm", "M,A1", uid=str(uuid.uuid4())),
    Prompt([0, 1, 1, 1], "derm", "UNK", uid=str(uuid.uuid4())),
]
ALGORITHM = OmegaConf.create({"adv_estimator": "fair_grpo", "norm_adv_by_std_in_grpo": True, "fair_grpo": {}})


def _data(batch, with_metadata: bool) -> DataProto:
    infos = np.array([extra_info(group) for group in batch.non_tensor_batch["extra_info_group"]], dtype=object)
    non_tensors = {"uid": batch.index}
    if with_metadata:
        non_tensors.update(data_source=batch.non_tensor_batch["data_source"], extra_info=infos)
    return DataProto.from_dict(
        tensors={"token_level_rewards": batch.token_level_rewards, "response_mask": batch.response_mask},
        non_tensors=non_tensors,
    )


@pytest.fixture
def batch():
    made = make_batch(PROMPTS, shuffle_seed=4, padding_rows=2)
    groups = {p.uid: p.group for p in PROMPTS}
    made.non_tensor_batch["extra_info_group"] = [groups.get(u, "UNK") for u in made.index]
    return made


def test_pr_7473_hands_non_tensor_batch_and_matches_the_sampler_path(batch):
    patched = compute_advantage_with_pr_7473()
    direct = patched(_data(batch, with_metadata=True), adv_estimator="fair_grpo", config=ALGORITHM)
    direct_groups = context.last_report().prompt_groups
    assert context.last_report().unk_prompts == 1  # the labels arrived through non_tensor_batch

    context.reset_state()  # the sampler path: records from the trajectories, published, looked up by uid
    rows = [
        {"uid": str(u), "rm_scores": r, "data_source": str(d), "extra_info": extra_info(g)}
        for u, r, d, g in zip(
            batch.index,
            batch.token_level_rewards,
            batch.non_tensor_batch["data_source"],
            batch.non_tensor_batch["extra_info_group"],
            strict=True,
        )
        if not str(u).startswith("pad")
    ]
    cfg = FairGRPOConfig.from_algorithm(ALGORITHM)
    records = prompt_records(list_of_dict_to_tensordict(rows), cfg, GroupLabeler(cfg.group_attributes, cfg.age_bins))
    context.publish({r.uid: (r.domain, r.group) for r in records})
    through_sampler = ray_trainer.compute_advantage(
        _data(batch, with_metadata=False), adv_estimator="fair_grpo", config=ALGORITHM
    )

    assert sorted(direct_groups) == sorted(context.last_report().prompt_groups)
    torch.testing.assert_close(direct.batch["advantages"], through_sampler.batch["advantages"], rtol=0, atol=0)
    assert direct.batch["advantages"].abs().sum() > 0


def test_without_the_change_verl_hands_no_metadata(batch):
    verls_own = inspect.unwrap(ray_trainer.compute_advantage)  # without the plugin's RayPPOTrainer wrap
    verls_own(_data(batch, with_metadata=True), adv_estimator="fair_grpo", config=ALGORITHM)
    assert context.last_report().unk_prompts == len(PROMPTS)  # label-free: verl 0.9.1 drops the fields


UPSTREAM = Path(__file__).resolve().parent.parent / "upstream"
PATCHES = sorted(UPSTREAM.glob("[0-9][0-9]-*.patch"))
# verl's tests/special_sanity/check_pr_title.py
VERL_MODULES = {
    *("fsdp", "megatron", "veomni", "sglang", "vllm", "trtllm", "rollout", "trainer", "tests", "training_utils"),
    *("recipe", "hardware", "deployment", "ray", "worker", "single_controller", "misc", "docker", "ci", "perf"),
    *("model", "algo", "env", "tool", "ckpt", "doc", "data", "cfg", "reward", "fully_async", "one_step_off"),
}
VERL_TITLE = re.compile(r"^(?:\[BREAKING\])?\[(?P<modules>[a-z_,\s]+)\]\s+(?:feat|fix|refactor|chore|test):\s+\S.*$")


def _subject(patch: Path) -> str:
    """The mail's Subject header, unfolded, without format-patch's ``[PATCH]``."""
    header = patch.read_text().split("\n\n", 1)[0]
    subject = re.search(r"^Subject: (.*(?:\n[ \t].*)*)", header, re.MULTILINE).group(1)
    return re.sub(r"\s*\n[ \t]+", " ", subject).removeprefix("[PATCH] ")


def test_there_is_a_patch_for_each_hook_in_the_docs():
    hooks = re.findall(r"^## \d+\. ", (UPSTREAM.parent / "docs" / "upstream.md").read_text(), re.MULTILINE)
    assert len(PATCHES) == len(hooks) == 5
    assert [p.name[:2] for p in PATCHES] == [f"{i:02d}" for i in range(1, len(PATCHES) + 1)]


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.stem)
def test_each_patch_is_a_format_patch_mail_git_can_read(patch):
    assert re.match(r"From [0-9a-f]{40} ", patch.read_text())
    parsed = subprocess.run(["git", "apply", "--numstat", str(patch)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.stem)
def test_each_patch_adds_a_cpu_test_in_verls_layout(patch):
    added = re.findall(r"^diff --git a/(\S+) b/\1\nnew file mode", patch.read_text(), re.MULTILINE)
    assert [path for path in added if re.fullmatch(r"tests/(\w+/)*test_\w+_on_cpu\.py", path)], added


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.stem)
def test_each_description_is_titled_by_verls_rule_as_its_commit(patch):
    description = patch.with_suffix(".md").read_text()
    title = description.splitlines()[0].removeprefix("# ")
    match = VERL_TITLE.match(title)
    assert match, title
    assert set(re.findall(r"[a-z_]+", match["modules"])) <= VERL_MODULES
    assert title == _subject(patch)
    for section in ("### What does this PR do?", "### Test", "### Checklist Before Submitting"):
        assert section in description


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.stem)
def test_each_description_says_what_it_retires_in_files_that_exist(patch):
    description = patch.with_suffix(".md").read_text()
    assert "**In verl-fair**" in description and "**Relation to open PRs.**" in description
    named = re.findall(r"verl_fair/[\w/]+\.py", description)
    assert named
    assert [path for path in named if not (UPSTREAM.parent / path).is_file()] == []
