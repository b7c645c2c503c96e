# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Where per-prompt domains and groups come from: the batch, the published uid table, or nowhere."""

import logging

import numpy as np
import pytest
import torch
from helpers import Prompt, make_batch

from verl_fair.groups.labels import UNK, group_key
from verl_fair.integration import context, estimator
from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo

PROMPTS = [Prompt([1, 0, 1], "A", "M,A1"), Prompt([0, 0, 1], "B", "F,A2"), Prompt([1, 1, 0], "B", UNK)]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(estimator, "_warned", set())


def _groups_seen():
    return context.last_report().prompt_groups


def test_metadata_from_non_tensor_batch():
    fair_grpo(**make_batch(PROMPTS).kwargs())
    assert _groups_seen() == [("A", "M,A1"), ("B", "F,A2"), ("B", UNK)]


def test_metadata_from_the_published_uid_table_is_consumed():
    batch = make_batch(PROMPTS)
    uids = list(dict.fromkeys(batch.index))
    context.publish({uids[0]: ("A", "M,A1"), uids[1]: ("B", "F,A2"), uids[2]: ("B", UNK)})
    fair_grpo(**batch.kwargs(with_metadata=False))
    assert _groups_seen() == [("A", "M,A1"), ("B", "F,A2"), ("B", UNK)]
    assert not context.has_published()


def test_partly_published_metadata_counts_the_rest_as_unk(caplog):
    batch = make_batch(PROMPTS)
    context.publish({batch.index[0]: ("A", "M,A1")})
    with caplog.at_level(logging.WARNING):
        fair_grpo(**batch.kwargs(with_metadata=False))
    assert "2 of 3 prompts had no published metadata" in caplog.text
    assert _groups_seen()[1:] == [("default", UNK), ("default", UNK)]


def test_label_free_mode_warns_once_with_the_fix(caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            fair_grpo(**make_batch(PROMPTS).kwargs(with_metadata=False))
    warnings = [r for r in caplog.records if "label-free" in r.getMessage()]
    assert len(warnings) == 1
    assert "trainer.v1.sampler.custom_sampler.path" in warnings[0].getMessage()
    assert set(_groups_seen()) == {("default", UNK)}


def test_custom_data_source_key():
    batch = make_batch(PROMPTS)
    batch.non_tensor_batch["dataset"] = batch.non_tensor_batch.pop("data_source")
    fair_grpo(**batch.kwargs({"fair_grpo": {"data_source_key": "dataset"}}))
    assert [d for d, _ in _groups_seen()] == ["A", "B", "B"]


@pytest.mark.parametrize(
    ("extra_info", "key"),
    [
        ({"sex": "Male", "age": 68}, "M,A3"),
        ({"demographics": {"sex": "female", "age": "25"}}, "F,A1"),
        ({"sex": "F", "age": 76.5}, "F,A4"),
        ({"sex": "M", "age": "nan"}, "M,UNK"),
        ({"sex": "unknown", "age": None}, UNK),
        ({"sex": "", "age": "not recorded"}, UNK),
        ({}, UNK),
        (None, UNK),
        ("sex: Male", UNK),
        ({"demo": "sex: Male, age: 68"}, "M,A3"),
        ({"demo": "age: 80, sex: female"}, "F,A4"),
        ({"demo": "garbled"}, UNK),
        ({"fair_group": "site-3", "sex": "M"}, "site-3"),
        ({"fair_group": "  ", "sex": "M", "age": 30}, "M,A2"),
        ({"fair_group": float("nan"), "sex": "F", "age": 51}, "F,A3"),
    ],
)
def test_group_keys(extra_info, key):
    assert group_key(extra_info) == key


def test_age_bins_are_configurable():
    keys = [group_key({"age": a}, ["age"], (18, 65)) for a in (10, 18, 40, 65, 90, -1, True)]
    assert keys == ["A1", "A1", "A2", "A2", "A3", UNK, UNK]
    batch = make_batch(PROMPTS)
    batch.non_tensor_batch["extra_info"] = np.array([{"age": 70}] * len(batch.index), dtype=object)
    fair_grpo(**batch.kwargs({"fair_grpo": {"group_attributes": ["age"], "age_bins": [18, 65]}}))
    assert {g for _, g in _groups_seen()} == {"A3"}


def test_labels_none_masks_groups_but_keeps_domains():
    fair_grpo(**make_batch(PROMPTS).kwargs({"fair_grpo": {"labels": "none"}}))
    assert _groups_seen() == [("A", UNK), ("B", UNK), ("B", UNK)]
    assert all(group.startswith("latent") for _, group in context.last_report().prompt_keys)


def test_labels_required_stops_a_label_free_run():
    with pytest.raises(estimator.MissingLabelsError, match="labels=required.*custom_sampler"):
        fair_grpo(**make_batch(PROMPTS).kwargs({"fair_grpo": {"labels": "required"}}, with_metadata=False))


def test_unknown_values_are_counted_by_attribute_and_reason():
    from verl_fair.groups.labels import GroupLabeler

    labeler = GroupLabeler(("sex", "age"), (25, 50, 75))
    keys = labeler.assign([{"sex": "F", "age": "old"}, {"demographics": {"sex": None}}, {"fair_group": "x"}, None])
    assert keys == ["F,UNK", UNK, "x", UNK]
    assert labeler.unknown_ == {
        ("age", "unparseable"): 1,
        ("sex", "empty"): 1,
        ("age", "absent"): 2,
        ("sex", "absent"): 1,
    }


def test_a_misspelt_attribute_is_reported_once(caplog):
    batch = make_batch(PROMPTS)
    batch.non_tensor_batch["extra_info"] = np.array([{"sex": "F", "age": 40}] * len(batch.index), dtype=object)
    config = {"fair_grpo": {"group_attributes": ["sex", "gender"]}}
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            fair_grpo(**batch.kwargs(config))
    reports = [r.getMessage() for r in caplog.records if "'gender' is in no row" in r.getMessage()]
    assert len(reports) == 1 and "age" in reports[0] and "sex" in reports[0]
    assert {g for _, g in _groups_seen()} == {"F,UNK"}


def test_rows_without_any_demographics_raise_no_misspelling_report(caplog):
    batch = make_batch(PROMPTS)
    batch.non_tensor_batch["extra_info"] = np.array([{}] * len(batch.index), dtype=object)
    with caplog.at_level(logging.WARNING):
        fair_grpo(**batch.kwargs())
    assert "is in no row" not in caplog.text


def test_publishing_replaces_a_batch_nobody_took():
    context.publish({"a": ("A", "M,A1")})
    context.publish({"b": ("B", "F,A2")})  # e.g. a GRPO baseline run never takes them
    assert context.take(["a", "b"]) == [None, ("B", "F,A2", None)]


def test_the_sampler_reads_gold_labels_with_the_groups():
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from verl_fair.config import FairGRPOConfig
    from verl_fair.groups.labels import GroupLabeler
    from verl_fair.integration.sampler import prompt_records

    rows = [
        {"uid": "a", "rm_scores": torch.tensor([0.0, 1.0]), "data_source": "cxr",
         "extra_info": {"sex": "F", "age": 30}, "reward_model": {"ground_truth": "Edema, effusion"}},
        {"uid": "a", "rm_scores": torch.tensor([0.0, 0.0]), "data_source": "cxr",
         "extra_info": {"sex": "F", "age": 30}, "reward_model": {"ground_truth": "Edema, effusion"}},
        {"uid": "b", "rm_scores": torch.tensor([1.0, 0.0]), "data_source": "cxr",
         "extra_info": '{"sex": "male", "age": 80}', "reward_model": {"ground_truth": "\\text{Normal}"}},
    ]  # fmt: skip
    cfg = FairGRPOConfig()
    records = prompt_records(list_of_dict_to_tensordict(rows), cfg, GroupLabeler(cfg.group_attributes, cfg.age_bins))
    assert [(r.uid, r.domain, r.group, r.label, r.rewards) for r in records] == [
        ("a", "cxr", "F,A2", "edema, effusion", [1.0, 0.0]),
        ("b", "cxr", "M,A4", "no finding", [1.0]),
    ]


def test_demo_strings_keep_decimal_commas():
    assert group_key({"demo": "age: 1,5, sex: Female"}) == "F,A1"
    assert group_key({"demo": "sex: Male, age: 68, race: white"}, ["sex", "age", "race"]) == "M,A3,white"
