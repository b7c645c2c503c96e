# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The clinical-diagnosis reward: parsing, scoring, fixed keys, robustness, and verl's reward loop."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verl_fair.normalise.diagnosis import set_f1, split_labels
from verl_fair.reward_fns.clinical_diagnosis import compute_score, extract_answer

KEYS = {
    "score",
    "acc",
    "pred",
    "format_ok",
    "group",
    "domain",
    "group_sex",
    "group_age",
}


@pytest.mark.parametrize(
    ("response", "answer", "tagged"),
    [
        ("so \\boxed{Pneumonia}", "Pneumonia", True),
        ("\\boxed{\\text{Pleural {Effusion}}}", "\\text{Pleural {Effusion}}", True),
        ("first \\boxed{A} then \\boxed{B}", "B", True),
        ("<answer>Edema</answer>", "Edema", True),
        ("<ANSWER> edema </ANSWER> and later \\boxed{Mass}", "Mass", True),
        ("\\boxed{Mass} but finally <answer>Nodule</answer>", "Nodule", True),
        ("<answer>\\boxed{Nodule}</answer>", "Nodule", True),
        ("<answer>cut off mid", "cut off mid", True),
        ("\\boxed{unbalanced", "\\boxed{unbalanced", False),
        ("I think.\nFinal answer: Melanoma\nThanks", "Melanoma", False),
        ("line one\n\nlast line  ", "last line  ", False),
        ("", "", False),
    ],
)
def test_answer_extraction(response, answer, tagged):
    got, found, _ = extract_answer(response)
    assert (got, found) == (answer, tagged)


@pytest.mark.parametrize(
    ("response", "truth", "acc"),
    [
        ("\\boxed{Pneumonia}", "pneumonia", 1.0),
        ("\\boxed{  PNEUMONIA. }", "Pneumonia", 1.0),
        ("\\boxed{Normal}", "No Finding", 1.0),
        ("\\boxed{Edema and Pleural Effusion}", "Pleural Effusion, Edema", 1.0),
        ("\\boxed{Edema, Mass}", "Edema; Pneumonia", 0.5),
        ("\\boxed{Edema}", ["Edema", "Mass"], 2 / 3),
        ("\\boxed{Edema}", np.array(["Edema"], dtype=object), 1.0),
        ("\\boxed{Edema}", "Mass", 0.0),
        ("\\boxed{}", "Mass", 0.0),
        ("\\boxed{Edema}", None, 0.0),
        ("\\boxed{Ｅｄｅｍａ}", "edema", 1.0),
    ],
)
def test_set_f1_scoring(response, truth, acc):
    assert compute_score("chexpert", response, truth)["acc"] == pytest.approx(acc)


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        ("\\boxed{pleural effusion}", "Pleural_Effusion"),
        ("\\boxed{pleural-effusion}", "pleural effusion"),
        ("\\boxed{covid 19}", "COVID-19"),
        ("\\boxed{No_Finding}", "normal"),
        ("\\boxed{Pleural -  Effusion}", "pleural effusion"),
    ],
)
def test_underscores_hyphens_and_spacing_between_words_are_ignored(response, truth):
    """NIH ChestX-ray14 writes its labels with "_"; a hyphen or "_" joining two words reads as a space."""
    assert compute_score("nih", response, truth)["acc"] == 1.0


@pytest.mark.parametrize(
    ("response", "truth", "acc"),
    [
        ("\\boxed{Hand and foot disease}", "Hand and foot disease", 1.0),
        ("\\boxed{Hand & foot disease}", "hand and foot disease", 0.0),  # "&" is no "and": two labels, a hedge
        ("\\boxed{Hand and foot disease}", "Hand and foot disease, Fever", 2 / 3),
        ("\\boxed{Hand}", "Hand and foot disease", 0.0),
        ("\\boxed{Edema and Mass}", "Edema, Mass", 1.0),
    ],
)
def test_and_inside_a_gold_label_keeps_it_one_label(response, truth, acc):
    single = {"multi_label": False}
    assert compute_score("hfmd", response, truth, single if "," not in truth else None)["acc"] == pytest.approx(acc)


def test_signs_on_a_label_still_tell_labels_apart():
    assert split_labels("HER2+, ER-", {}) == {"her2+", "er-"}
    assert compute_score("x", "\\boxed{HER2-}", "HER2+")["acc"] == 0.0


@pytest.mark.parametrize("synonyms", [{"": "a"}, {"a": ""}, {"**": "a"}, {"b": " - "}])
def test_empty_synonym_aliases_or_names_are_refused(synonyms):
    with pytest.raises(ValueError, match=r"reward_kwargs\.synonyms has .*empty label"):
        compute_score("x", "\\boxed{}", "a", synonyms=synonyms)


@pytest.mark.parametrize("response", ["\\boxed{}", "<answer> </answer>", ""])
def test_an_empty_answer_scores_zero_whatever_the_synonyms(response):
    assert split_labels("", {"": "a"}) == frozenset()
    assert compute_score("x", response, "a", synonyms={"n/a": "a"})["acc"] == 0.0


def test_synonyms_are_configurable():
    assert compute_score("x", "\\boxed{nv}", "melanocytic nevus", synonyms={"NV": "Melanocytic Nevus"})["acc"] == 1.0
    assert set_f1(split_labels("a, b", {}), split_labels("b, c", {})) == pytest.approx(0.5)


def test_format_term_and_think_tags():
    plain = compute_score("x", "Final answer: Mass", "Mass", format_weight=0.5)
    assert plain["format_ok"] == 0.0 and plain["score"] == pytest.approx(0.5)
    boxed = compute_score("x", "\\boxed{Mass}", "Mass", format_weight=0.5, require_think=True)
    assert boxed["format_ok"] == 0.0
    thought = compute_score(
        "x", "<think>round opacity</think>\\boxed{Mass}", "Mass", format_weight=0.5, require_think=True
    )
    assert thought["format_ok"] == 1.0 and thought["score"] == 1.0


def test_each_sample_names_its_groups_and_no_value_is_none():
    result = compute_score("x", "\\boxed{Mass}", "Mass", {"demographics": {"sex": "female", "age": 30}})
    assert set(result) == KEYS and None not in result.values()
    assert (result["group"], result["group_sex"], result["group_age"], result["domain"]) == ("F,A2", "F", "A2", "x")
    custom = compute_score("x", "\\boxed{Mass}", "Mass", {"race": "Asian"}, group_attributes=["race"])
    assert custom["group_race"] == "Asian" and "group_sex" not in custom
    unknown = compute_score("x", "\\boxed{Mass}", "Mass", {"demographics": {"age": float("nan")}})
    assert None not in unknown.values() and unknown["group_age"] == "UNK"


def test_retired_group_values_says_what_replaces_it():
    with pytest.raises(ValueError, match=r"group_values is retired.*group_attributes.*val-fair/"):
        compute_score("x", "\\boxed{a}", "a", group_values={"sex": ["F", "M"]})


def test_settings_errors_name_the_setting():
    with pytest.raises(ValueError, match="reward_kwargs has unknown settings \\['fromat_weight'\\]"):
        compute_score("x", "y", "z", fromat_weight=0.1)
    with pytest.raises(ValueError, match="format_weight=2"):
        compute_score("x", "y", "z", format_weight=2)
    assert set(compute_score("x", "y", "z", reward_router_address=None, reward_model_tokenizer=None)) == KEYS


anything = st.one_of(
    st.none(),
    st.text(),
    st.integers(),
    st.floats(),
    st.binary(),
    st.lists(st.text(max_size=20)),
    st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=8), st.integers(), st.none())),
)


@settings(max_examples=300, deadline=None)
@given(
    response=st.one_of(st.text(), st.text(alphabet="{}\\boxed<>/answer ,"), anything), truth=anything, extra=anything
)
def test_never_raises_and_always_returns_the_same_keys(response, truth, extra):
    result = compute_score("x", response, truth, extra)
    assert set(result) == KEYS
    assert 0.0 <= result["score"] <= 1.0 and isinstance(result["pred"], str)


@pytest.mark.parametrize(
    "response",
    [
        "{" * 1_000_000,
        "}" * 1_000_000,
        "\\boxed{" * 150_000,
        "<answer>" * 120_000,
        "\\boxed{" + "x" * 1_000_000 + "}",
        "and, " * 200_000,
        "\u0301\u200b\U0001f600" * 300_000,
    ],
)
def test_adversarial_megabyte_inputs(response):
    assert set(compute_score("x", response, "x, y")) == KEYS


def test_thread_safe_under_a_pool():
    from concurrent.futures import ThreadPoolExecutor

    cases = [("\\boxed{Mass}", "Mass", 1.0), ("\\boxed{Edema, Mass}", "Mass, Nodule", 0.5)] * 200
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda c: compute_score("x", c[0], c[1])["acc"], cases))
    assert got == pytest.approx([c[2] for c in cases])


def _reward_config(path):
    from hydra import compose, initialize_config_dir

    from verl_fair.configs import folder as configs_folder

    with initialize_config_dir(config_dir=str(configs_folder()), version_base=None):
        return compose(
            config_name="fair_grpo_trainer",
            overrides=[
                f"reward.custom_reward_function.path={path}",
                "reward.custom_reward_function.reward_kwargs.format_weight=0.2",
            ],
        )


@pytest.mark.parametrize("path", ["pkg://verl_fair.reward_fns.clinical_diagnosis", "reward_fns/clinical_diagnosis.py"])
def test_through_verls_reward_loop(path):
    from tiny_tokenizer import tiny_tokenizer
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager

    tokenizer = tiny_tokenizer()
    manager = load_reward_manager(_reward_config(path), tokenizer)
    text = "<think>The lungs look clear.</think> The answer is \\boxed{No Finding}."
    response = torch.tensor([tokenizer.encode(text)])
    prompt = torch.tensor([tokenizer.encode("Which conditions are present?")])
    extra_info = {"index": 3, "demographics": {"sex": "male", "age": 81}}
    data = DataProto.from_dict(
        tensors={
            "prompts": prompt,
            "responses": response,
            "attention_mask": torch.ones(1, prompt.shape[1] + response.shape[1], dtype=torch.int64),
        },
        non_tensors={
            "data_source": np.array(["chexpert"], dtype=object),
            "reward_model": np.array([{"ground_truth": "normal"}], dtype=object),
            "extra_info": np.array([extra_info], dtype=object),
        },
    )
    result = manager.loop.run_until_complete(manager.run_single(data))  # the loop verl bound it to
    assert result["reward_score"] == pytest.approx(1.0)
    info = result["reward_extra_info"]
    assert set(info) == KEYS and None not in info.values()
    assert (info["acc"], info["group"], info["group_sex"], info["group_age"]) == (1.0, "M,A4", "M", "A4")


@pytest.mark.parametrize(
    "answer",
    [
        "\\boxed{\\text{Pneumonia}}",
        "\\boxed{\\textbf{pneumonia}}",
        "<answer>**Pneumonia**</answer>",
        "The answer is **Pneumonia**.",
        "Final answer: *pneumonia*",
        "\\boxed{\\mathrm{Pneumonia}}",
    ],
)
def test_answer_formats_of_instruction_tuned_models_score(answer):
    assert compute_score("x", answer, "pneumonia")["acc"] == 1.0


def test_a_hedge_on_a_single_label_task_scores_zero():
    assert compute_score("x", "\\boxed{melanoma, nevus}", "melanoma")["acc"] == 0.0
    labels = "melanoma, nevus, bcc, akiec, df, vasc, bkl"
    assert compute_score("x", f"\\boxed{{{labels}}}", "melanoma")["score"] == 0.0


def test_multi_label_tasks_keep_set_f1_from_extra_info_or_the_setting():
    flagged = {"multi_label": True}
    assert compute_score("x", "\\boxed{Edema, Mass}", "Mass", flagged)["acc"] == pytest.approx(2 / 3)
    assert compute_score("x", "\\boxed{Edema, Mass}", "Mass", {"multi_label": np.bool_(True)})["acc"] == pytest.approx(
        2 / 3
    )
    assert compute_score("x", "\\boxed{Edema, Mass}", "Mass", multi_label=True)["acc"] == pytest.approx(2 / 3)
    assert compute_score("x", "\\boxed{Edema, Mass}", "Mass, Nodule")["acc"] == pytest.approx(0.5)
    assert compute_score("x", "\\boxed{Edema, Mass}", "Mass, Nodule", multi_label=False)["acc"] == 0.0
    assert compute_score("x", "\\boxed{Edema, Mass}", "Mass", {"multi_label": False}, multi_label=True)["acc"] > 0


def test_numbers_keep_their_value():
    assert compute_score("x", "\\boxed{1}", 1.0)["acc"] == 1.0
    assert compute_score("x", "\\boxed{1.0}", "1")["acc"] == 1.0


def test_sex_values_are_read_as_prepare_reads_them():
    out = compute_score("x", "\\boxed{a}", "a", {"sex": "woman", "age": 30})
    assert out["group_sex"] == "F" and out["acc"] == 1.0


@pytest.mark.parametrize(
    "settings,named",
    [
        ({"synonyms": ["normal"]}, "reward_kwargs.synonyms"),
        ({"age_bins": "abc"}, "reward_kwargs.age_bins"),
        ({"multi_label": "maybe"}, "reward_kwargs.multi_label"),
        ({"require_think": "yes"}, "reward_kwargs.require_think"),
        ({"group_attributes": "sex"}, "reward_kwargs.group_attributes"),
        ({"group_attributes": ["sex", "sex"]}, "reward_kwargs.group_attributes"),
        ({"group_attributes": []}, "reward_kwargs.group_attributes"),
        ({"group_attributes": [" sex"]}, "reward_kwargs.group_attributes"),  # would leave every sample UNK
    ],
)
def test_bad_settings_are_named(settings, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        compute_score("x", "\\boxed{a}", "a", **settings)


def test_settings_are_parsed_once_per_distinct_values(monkeypatch):
    from verl_fair.reward_fns import clinical_diagnosis

    calls = []
    original = clinical_diagnosis.parse_settings
    monkeypatch.setattr(clinical_diagnosis, "parse_settings", lambda kw: calls.append(kw) or original(kw))
    monkeypatch.setattr(clinical_diagnosis, "_parsed", {})
    for _ in range(50):
        compute_score("x", "\\boxed{a}", "a", synonyms={"b": "a"}, age_bins=[40])
    compute_score("x", "\\boxed{a}", "a", synonyms={"b": "a"}, age_bins=[41])
    assert len(calls) == 2
