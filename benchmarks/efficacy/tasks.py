"""The two efficacy tasks, as token prompts with a diagnosis label and demographic groups.

(a) ``diabetes``: scikit-learn's diabetes cohort (442 real patients, shipped inside scikit-learn).
    Each patient's BMI, blood pressure and six serum measurements become quartile tokens
    (``bmi_q3``); the label is whether disease progression is above the cohort median. Groups: the
    sex code (1/2, undocumented meaning) and age (<=50, >50), which also appear as prompt tokens (as
    an image would show them).
(b) ``synthetic``: a cohort with controllable imbalance: a majority group (75 %), a minority (20 %)
    whose diagnosis follows a different marker, and a rare hard group (5 %) with a noisier marker
    and another base rate. The warm start sees almost only the majority.

A task is a list of :class:`Case` (prompt tokens, label, group per attribute) split into train and
test, plus the warm-start subset, which over-represents the first group as clinical data do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABELS = ("positive", "negative")


@dataclass(frozen=True)
class Case:
    tokens: tuple[str, ...]
    label: str
    groups: dict  # attribute -> group


@dataclass
class Task:
    name: str
    train: list[Case]
    test: list[Case]
    warm_start: list[Case]
    attributes: tuple[str, ...]


def _split(cases: list[Case], rng: np.random.Generator, test_fraction: float = 0.3):
    order = rng.permutation(len(cases))
    cut = int(len(cases) * (1 - test_fraction))
    return [cases[i] for i in order[:cut]], [cases[i] for i in order[cut:]]


def _skewed(
    cases: list[Case], attribute: str, majority: str, rng: np.random.Generator, share: float = 0.9, size: int = 200
) -> list[Case]:
    """A warm-start set with ``share`` of its cases from the majority group."""
    major = [c for c in cases if c.groups[attribute] == majority]
    minor = [c for c in cases if c.groups[attribute] != majority]
    take = int(size * share)
    picked = [major[i] for i in rng.integers(len(major), size=take)]
    if minor:
        picked += [minor[i] for i in rng.integers(len(minor), size=size - take)]
    return picked


def diabetes(seed: int) -> Task:
    from sklearn.datasets import load_diabetes

    rng = np.random.default_rng(seed)
    frame = load_diabetes(as_frame=True, scaled=False).frame
    features = ["bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    quartiles = {f: np.quantile(frame[f], [0.25, 0.5, 0.75]) for f in features}
    median = frame["target"].median()
    cases = []
    for _, row in frame.iterrows():
        tokens = tuple(f"{f}_q{int(np.searchsorted(quartiles[f], row[f]))}" for f in features)
        groups = {"sex_code": str(int(row["sex"])), "age_bin": "le50" if row["age"] <= 50 else "gt50"}
        tokens += (f"sex{groups['sex_code']}", f"age_{groups['age_bin']}")
        cases.append(Case(tokens, LABELS[0] if row["target"] > median else LABELS[1], groups))
    train, test = _split(cases, rng)
    return Task("diabetes", train, test, _skewed(train, "sex_code", "1", rng), ("sex_code", "age_bin"))


def synthetic(seed: int, size: int = 1200) -> Task:
    rng = np.random.default_rng(seed)
    # group: (share, marker that decides the label, how often the marker is right, base rate)
    spec = {"majority": (0.75, "m1", 0.95, 0.5), "minority": (0.20, "m2", 0.9, 0.5), "rare": (0.05, "m3", 0.85, 0.3)}
    names = list(spec)
    cases = []
    for group in rng.choice(names, size=size, p=[spec[g][0] for g in names]):
        _, marker, reliability, base_rate = spec[group]
        label = LABELS[0] if rng.random() < base_rate else LABELS[1]
        informative = label == LABELS[0] if rng.random() < reliability else label != LABELS[0]
        tokens = [f"group_{group}"]
        for m in ("m1", "m2", "m3"):
            value = informative if m == marker else bool(rng.random() < 0.5)
            tokens.append(f"{m}_{'hi' if value else 'lo'}")
        cases.append(Case(tuple(tokens), label, {"cohort": str(group)}))
    train, test = _split(cases, rng)
    return Task("synthetic", train, test, _skewed(train, "cohort", "majority", rng, share=0.95), ("cohort",))


TASKS = {"diabetes": diabetes, "synthetic": synthetic}
