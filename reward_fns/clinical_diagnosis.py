# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Clinical-diagnosis reward for verl: set-F1 between the predicted and the gold diagnoses.

Use it from an installed verl-fair or from a checkout::

    reward.custom_reward_function.path=pkg://verl_fair.reward_fns.clinical_diagnosis
    reward.custom_reward_function.path=reward_fns/clinical_diagnosis.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.format_weight=0.1      # optional settings, below

The final answer is read from, in order of preference by position (the last one in the text wins):
``\\boxed{...}`` (nested braces allowed) or ``<answer>...</answer>`` (an unclosed last ``<answer>``
runs to the end of the text). Without either, the fallback is the text after the last "answer:"
or "answer is" (e.g. "Final answer: effusion", "The answer is **effusion**."), else the last non-empty
line; ``format_ok`` is 0 then. Only the
last 100,000 characters are searched, so the cost is bounded whatever the input.

Labels are compared after normalisation (Unicode NFKC, lower case, punctuation removed, "_" and hyphens
between words read as spaces, whitespace collapsed, synonyms mapped to one name; an empty answer scores
0); answers and ground truths with several labels are split on ",", ";", "&", "|", new lines and the
word "and". ``acc`` is set-F1 on multi-label tasks; on a
single-label task it is 1 or 0, and an answer naming several labels (a hedge, "Edema, Mass, Nodule")
scores 0. A task is multi-label by the ``multi_label`` setting: ``auto`` (default) reads the sample's
``extra_info["multi_label"]`` (written by ``verl-fair prepare``) and, when that is absent, takes the
task as multi-label only when the gold answer has several labels; ``true`` or ``false`` fix it.

Returned keys, the same for every sample:
    score       (1 - format_weight) * acc + format_weight * format_ok
    acc         set-F1 in [0, 1]
    pred        the normalised predicted labels joined by ", " (enables verl's maj@N)
    format_ok   1.0 when a boxed or tagged answer was found (and <think>...</think> precedes it when
                require_think is set), else 0.0
    group       the sample's demographic group key (e.g. "M,A3"; "UNK"), for audits of validation dumps
    group_<attribute>   the sample's group for each attribute of group_attributes ("F", "A3", "UNK")
    domain      the sample's data source (verl's validation dumps do not record it otherwise; not named
                data_source, which the legacy trainer would merge into the batch's own data_source)

No value is None: verl's validation metrics average every numeric key (verl main and its ``neo`` branch
do not skip None) and skip strings. Per-group validation accuracy comes from the ``group_<attribute>``
keys, in :mod:`verl_fair.integration.validation` and ``verl-fair report``.

Settings (``reward_kwargs``): format_weight (default 0), require_think (false), multi_label (auto),
synonyms (alias -> name, added to the defaults), group_attributes (the attributes that get a
``group_<attribute>`` key; default [sex, age]), age_bins ([25, 50, 75]).
Settings are parsed once per distinct set of values. An unknown or bad setting raises, naming it; sample
inputs never raise: anything unexpected scores 0 with the keys above.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from verl_fair.groups.labels import GroupLabeler, as_mapping
from verl_fair.normalise.diagnosis import set_f1, split_labels, synonym_table
from verl_fair.settings import AUTO, Invalid, increasing_numbers, name_list

logger = logging.getLogger(__name__)

SEARCH_WINDOW = 100_000
# keyword arguments verl itself may pass to a reward function; they are accepted and ignored
VERL_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer", "return_dict"})
DOMAIN_KEY = "domain"  # the returned key holding the sample's data source
SETTINGS = frozenset({"format_weight", "require_think", "multi_label", "synonyms", "group_attributes", "age_bins"})
DEFAULT_AGE_BINS = (25, 50, 75)
DEFAULT_GROUP_ATTRIBUTES = ("sex", "age")
CACHE_SIZE = 64  # distinct settings kept parsed

_ANSWER_PREFIX = re.compile(r"answer\s*(?:is\b\s*[:\-]?|[:\-])", re.IGNORECASE)
_parsed: dict[Hashable, dict[str, Any]] = {}


def compute_score(
    data_source: Any = None, solution_str: Any = None, ground_truth: Any = None, extra_info: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Score one response; see the module docstring for the keys and settings."""
    settings = _cached_settings(kwargs)
    try:
        return _score(data_source, solution_str, ground_truth, extra_info, settings)
    except Exception:  # a reward must never take the run down; count it in the logs
        logger.warning("clinical_diagnosis: could not score a sample of %r; scoring 0", data_source, exc_info=True)
        return {
            "score": 0.0,
            "acc": 0.0,
            "pred": "",
            "format_ok": 0.0,
            "group": "UNK",
            DOMAIN_KEY: str(data_source),
            **{f"group_{attribute}": "UNK" for attribute in settings["group_attributes"]},
        }


def _score(data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Any, settings: dict) -> dict[str, Any]:
    text = solution_str if isinstance(solution_str, str) else ("" if solution_str is None else str(solution_str))
    text = text[-SEARCH_WINDOW:]
    answer, tagged, start = extract_answer(text)
    synonyms = settings["synonyms"]
    gold = split_labels(ground_truth, synonyms)
    predicted = split_labels(answer, synonyms, gold)
    hedged = len(predicted) > 1 and not _multi_label(settings["multi_label"], extra_info, gold)
    acc = 0.0 if hedged else set_f1(predicted, gold)
    format_ok = tagged and (not settings["require_think"] or _think_before(text, start))
    weight = settings["format_weight"]
    key, statuses = settings["labeler"].key(extra_info)
    result = {
        "score": float((1.0 - weight) * acc + weight * float(format_ok)),
        "acc": acc,
        "pred": ", ".join(sorted(predicted)),
        "format_ok": float(format_ok),
        "group": key,
        DOMAIN_KEY: str(data_source),
    }
    for attribute, (label, _) in zip(settings["group_attributes"], statuses, strict=True):
        result[f"group_{attribute}"] = label
    return result


def extract_answer(text: str) -> tuple[str, bool, int]:
    """(answer, found in boxed/answer tags, start position) of the last answer in ``text``."""
    candidates = [c for c in (_last_boxed(text), _last_answer_tag(text)) if c is not None]
    if candidates:
        start, content = max(candidates)
        return content, True, start
    prefixed = list(_ANSWER_PREFIX.finditer(text[-2000:]))
    if prefixed:
        tail = text[-2000:][prefixed[-1].end() :]
        return tail.strip().splitlines()[0] if tail.strip() else "", False, len(text)
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else ""), False, len(text)


def _last_boxed(text: str) -> tuple[int, str] | None:
    """The last complete ``\\boxed{...}``: one pass over the braces, so linear in the text."""
    found = None
    stack: list[tuple[int, bool]] = []  # (content start, opened by \boxed)
    for match in re.finditer(r"\\boxed\s*\{|[{}]", text):
        token = match.group(0)
        if token == "}":
            if stack:
                begin, boxed = stack.pop()
                if boxed:
                    found = (match.start(), begin)
        else:
            stack.append((match.end(), token != "{"))
    if found is None:
        return None
    end, begin = found
    return begin, text[begin:end]


def _last_answer_tag(text: str) -> tuple[int, str] | None:
    lower = text.lower()
    opening = lower.rfind("<answer>")
    if opening < 0:
        return None
    begin = opening + len("<answer>")
    closing = lower.find("</answer>", begin)
    return begin, text[begin : closing if closing >= 0 else len(text)]


def _multi_label(setting: str | bool, extra_info: Any, gold: frozenset[str]) -> bool:
    """Whether the sample's task is multi-label: the setting, else extra_info's flag, else the gold's size."""
    if setting != AUTO:
        return setting
    info = as_mapping(extra_info)
    flag = None if info is None else info.get("multi_label")
    flag = flag.item() if hasattr(flag, "item") else flag  # a numpy bool from a parquet column
    return flag if isinstance(flag, bool) else len(gold) > 1


def _think_before(text: str, position: int) -> bool:
    lower = text[:position].lower()
    opening = lower.find("<think>")
    return opening >= 0 and lower.find("</think>", opening) >= 0


def _cached_settings(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`parse_settings` of ``kwargs``, parsed once per distinct set of values."""
    own = {key: value for key, value in kwargs.items() if key not in VERL_KWARGS}
    try:
        key = _frozen(own)
        found = _parsed.get(key)
    except TypeError:  # a value without a hashable form: parse it every time
        return parse_settings(own)
    if found is None:
        if len(_parsed) >= CACHE_SIZE:
            _parsed.clear()
        found = _parsed[key] = parse_settings(own)
    return found


def _frozen(value: Any) -> Hashable:
    """A hashable form of a settings value that tells apart types that compare equal (True and 1)."""
    if isinstance(value, Mapping):
        return "mapping", tuple(sorted(((_frozen(k), _frozen(v)) for k, v in value.items()), key=repr))
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return "sequence", tuple(_frozen(v) for v in value)
    hash(value)
    return type(value).__name__, value


def parse_settings(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Validated ``reward_kwargs``; a bad setting is a configuration error and raises."""
    if "group_values" in kwargs:
        raise ValueError(
            "reward_kwargs.group_values is retired: its per-group keys were None for non-members, which verl "
            "main and neo cannot average. Set reward_kwargs.group_attributes instead (the estimator's: "
            "${algorithm.fair_grpo.group_attributes}, or a list such as [sex, age]); per-group "
            "validation accuracy is val-fair/<data_source>/<attribute>/<group>/acc"
        )
    unknown = set(kwargs) - SETTINGS - VERL_KWARGS
    if unknown:
        raise ValueError(
            f"reward_kwargs has unknown settings {sorted(unknown)} for clinical_diagnosis; allowed: {sorted(SETTINGS)}"
        )
    weight = kwargs.get("format_weight", 0.0)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0.0 <= weight <= 1.0:
        raise ValueError(f"reward_kwargs.format_weight={weight!r} is not valid: expected a number in [0, 1]")
    require_think = kwargs.get("require_think", False)
    if not isinstance(require_think, bool):
        raise ValueError(f"reward_kwargs.require_think={require_think!r} is not valid: expected true or false")
    multi_label = kwargs.get("multi_label", AUTO)
    if not (isinstance(multi_label, bool) or multi_label == AUTO):
        raise ValueError(
            f"reward_kwargs.multi_label={multi_label!r} is not valid: expected auto (extra_info.multi_label, else "
            "several gold labels), true (set-F1) or false (single-label: an answer naming several labels scores 0)"
        )
    synonyms = kwargs.get("synonyms") or {}
    if not isinstance(synonyms, Mapping) or not all(isinstance(v, str) for v in synonyms.values()):
        raise ValueError(
            f"reward_kwargs.synonyms={synonyms!r} is not valid: expected a mapping of alias to name, "
            "e.g. {normal: no finding}"
        )
    age_bins = kwargs.get("age_bins", DEFAULT_AGE_BINS)
    try:
        age_bins = increasing_numbers(list(age_bins) if isinstance(age_bins, Sequence) else age_bins)
    except Invalid as error:
        raise ValueError(f"reward_kwargs.age_bins={age_bins!r} is not valid: expected {error}") from None
    try:
        synonyms = synonym_table(synonyms)
    except ValueError as error:
        raise ValueError(f"reward_kwargs.{error}") from None
    attributes = kwargs.get("group_attributes", DEFAULT_GROUP_ATTRIBUTES)
    try:  # verl passes lists of its config as omegaconf ListConfig
        listed = isinstance(attributes, Sequence) and not isinstance(attributes, str)
        attributes = name_list(list(attributes) if listed else attributes)
    except Invalid as error:
        raise ValueError(f"reward_kwargs.group_attributes={attributes!r} is not valid: expected {error}") from None
    return {
        "format_weight": float(weight),
        "require_think": require_think,
        "multi_label": multi_label,
        "synonyms": synonyms,
        "group_attributes": attributes,
        "labeler": GroupLabeler(attributes, age_bins),
    }
