# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Diagnosis labels as the reward, ``prepare`` and ``report`` compare them.

A label is normalised by unwrapping LaTeX text commands (``\\text{Pneumonia}``) and markdown emphasis
(``**Pneumonia**``), Unicode NFKC, lower case, removing punctuation and collapsing whitespace; "_" and
a hyphen between two words read as a space (``Pleural_Effusion``, ``pleural-effusion`` and ``pleural
effusion`` are one label, as are ``COVID-19`` and ``covid 19``), while a sign at the end of a word stays
(``HER2+`` is not ``HER2-``); a number keeps its value (``"1.0"`` and ``"1"`` are the same label); then
synonyms map aliases to one name ("normal" -> "no finding"); an empty label stays empty. Labels are
separated by ",", ";", "|" and new lines, as ``prepare`` writes them; an answer's label is further split on
"&" and the word "and" unless it is one of the gold labels ("hand and foot disease" stays one label where
that is the gold, "pneumonia and effusion" is two where it is not).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

DEFAULT_SYNONYMS = {
    "normal": "no finding",
    "no findings": "no finding",
    "none": "no finding",
    "healthy": "no finding",
    "no abnormality": "no finding",
    "negative": "no finding",
}
LABEL_SEPARATORS = re.compile(r"\s*[,;|\n]\s*")
ANSWER_JOINERS = re.compile(r"\s*(?:&|\band\b)\s*", re.IGNORECASE)  # split an answer's label unless it is gold

_LATEX_COMMAND = re.compile(r"\\[a-zA-Z]+|\\.")
_BRACES_OR_EMPHASIS = re.compile(r"[{}*`~]+|_{2,}")
_BLANKS = re.compile(r"[ \t]{2,}")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_NOT_WORD = re.compile(r"[^\w\s+-]+|_|(?<=\w)-(?=\w)|(?<!\S)[+-]+(?!\S)")  # punctuation, joiners, lone signs
_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """``text`` without LaTeX commands (``\\text{x}`` -> ``x``), braces and markdown emphasis; one linear pass."""
    return _BLANKS.sub(" ", _BRACES_OR_EMPHASIS.sub("", _LATEX_COMMAND.sub(" ", text)))


def normalise_label(label: str, synonyms: Mapping[str, str]) -> str:
    """One normalised label (see the module docstring); "" when nothing is left."""
    text = unicodedata.normalize("NFKC", clean(label)).strip().lower()
    if _NUMBER.fullmatch(text):
        value = float(text)
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        text = _SPACES.sub(" ", _NOT_WORD.sub(" ", text)).strip()
    return synonyms.get(text, text) if text else ""


def split_labels(value: Any, synonyms: Mapping[str, str], gold: frozenset[str] | None = None) -> frozenset[str]:
    """The set of normalised labels in a ground truth (``gold`` None) or in an answer to the ``gold`` labels
    (a string, a number or a list of them); see the module docstring for the separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return frozenset()
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    parts = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    labels = set()
    for part in parts:
        for piece in LABEL_SEPARATORS.split(clean(str(part))):
            label = normalise_label(piece, synonyms)
            if gold is None or label in gold:
                labels.add(label)
            else:
                labels.update(normalise_label(joined, synonyms) for joined in ANSWER_JOINERS.split(piece))
    return frozenset(labels - {""})


def label_key(ground_truth: Any, synonyms: Mapping[str, str] = DEFAULT_SYNONYMS) -> str | None:
    """One string naming a gold label set (its normalised labels, sorted, joined by ", "); None when empty."""
    labels = split_labels(ground_truth, synonyms)
    return ", ".join(sorted(labels)) if labels else None


def synonym_table(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The default synonyms plus ``extra`` (alias -> name), both sides normalised.

    Raises:
        ValueError: an alias or a name that normalises to an empty label (``""``, ``"**"``), naming the pair.
    """
    table = dict(DEFAULT_SYNONYMS)
    for alias, name in (extra or {}).items():
        key, value = normalise_label(str(alias), {}), normalise_label(str(name), {})
        if not key or not value:
            raise ValueError(
                f"synonyms has {alias!r}: {name!r}, whose {'alias' if not key else 'name'} is an empty label: give "
                "both an alias and a name with letters or digits, e.g. {normal: no finding}"
            )
        table[key] = value
    return table


def set_f1(predicted: frozenset[str], gold: frozenset[str]) -> float:
    """2PR / (P + R) of two label sets; 0 when they share nothing (or the ground truth is empty)."""
    hits = len(predicted & gold)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(predicted), hits / len(gold)
    return 2 * precision * recall / (precision + recall)
