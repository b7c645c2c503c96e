# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The text demo's clinical task: synthetic chest-pain triage vignettes, generated offline in a second and
prepared with ``verl-fair prepare table``.

Each patient has a sex, an age and two presenting symptoms; the diagnosis is ``cardiac`` (an acute
coronary syndrome: half the patients) or ``benign``. As in the clinic, women with a heart attack more
often present without the textbook chest pain (nausea, fatigue, jaw or back pain) and men mostly with
it, so a model that learnt from a male-dominated sample misses the women's heart attacks. The symptoms
decide the diagnosis (an oracle scores 100 %); sex and age are in the text, as in a real note. Women
are the minority (30 %). The numbers are made up: this is a teaching task, not clinical data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from verl_fair.demo import patients
from verl_fair.demo.model import Example
from verl_fair.demo.patients import write_table

DATA_SOURCE = "chest_pain"
LABELS = ("cardiac", "benign")
QUESTION = (
    "A {age}-year-old {person} comes to the emergency department with {symptoms}. "
    "Is the cause cardiac or benign? Options: cardiac, benign."
)
TYPICAL = ("crushing chest pressure", "pain spreading to the left arm", "chest tightness on exertion", "cold sweats")
ATYPICAL = ("nausea", "unusual fatigue", "jaw discomfort", "upper back pain")
BENIGN = ("pain when pressing the chest wall", "pain on deep breaths", "heartburn after meals", "a pulled muscle")
ATYPICAL_SHARE = {"F": 0.7, "M": 0.0}  # of heart attacks presenting without the textbook chest pain
MISSED = 0.6  # of women's atypical heart attacks that the records call benign


def symptoms(rng: np.random.Generator, sex: str, cardiac: bool) -> str:
    """Two presenting symptoms: from the textbook or the atypical pool for a heart attack, else benign ones."""
    if not cardiac:
        pool = BENIGN
    else:
        pool = ATYPICAL if rng.random() < ATYPICAL_SHARE[sex] else TYPICAL
    first, second = rng.choice(len(pool), size=2, replace=False)
    return f"{pool[first]} and {pool[second]}"


def write_task(folder: str | Path, patients: int = 480, female_share: float = 0.3, seed: int = 0) -> Path:
    """A CSV of ``patients`` vignettes in ``folder`` (``patient``, ``sex``, ``age``, ``person``, ``symptoms``,
    ``diagnosis``, ``recorded``); its path. ``diagnosis`` is the adjudicated truth the reward scores against,
    ``recorded`` what the historical records say: :data:`MISSED` of women's atypical heart attacks are
    recorded as benign, as under-diagnosis leaves them in real records."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(patients):
        sex = "F" if rng.random() < female_share else "M"
        cardiac = bool(rng.random() < 0.5)
        told = symptoms(rng, sex, cardiac)
        missed = cardiac and any(s in told for s in ATYPICAL) and rng.random() < MISSED
        rows.append(
            {
                "patient": f"p{number:03d}",
                "sex": sex,
                "age": int(rng.integers(30, 86)),
                "person": "woman" if sex == "F" else "man",
                "symptoms": told,
                "diagnosis": LABELS[0] if cardiac else LABELS[1],
                "recorded": LABELS[0] if cardiac and not missed else LABELS[1],
            }
        )
    return write_table(folder, rows)


def prepare(folder: str | Path, options: list[str], seed: int = 0) -> int:
    """Write the task into ``folder`` and run ``verl-fair prepare`` on it with ``options`` (at least
    ``--output FOLDER``); its exit code."""
    return patients.prepare(write_task(folder, seed=seed), DATA_SOURCE, "diagnosis", QUESTION, options)


def examples(parquet: str | Path, table: str | Path) -> list[Example]:
    """The prompts of a prepared file with the diagnosis the records give (``table``'s ``recorded``),
    boxed: what a model learns from historical records."""
    recorded = pd.read_csv(table, index_col="patient")["recorded"]
    frame = pd.read_parquet(parquet)
    return [
        Example(
            messages=[dict(m) for m in row.prompt],
            answer=f"\\boxed{{{recorded[row.extra_info['source_id']]}}}",
            group=str(row.extra_info["demographics"]["sex"]),
        )
        for row in frame.itertuples()
    ]
