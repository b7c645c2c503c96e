"""The efficacy tasks: token prompts with a gold label, demographic groups and fixed splits.

(a) ``flchain``: scikit-survival's ``load_flchain`` (7,874 residents of Olmsted County with serum
    free light chain measurements; Dispenzieri et al. 2012). Label: death within 5 years of the
    sample (``died``) or alive at 5 years (``survived``). Patients censored alive before 5 years have
    no known label and are dropped (195 of 7,874, counted in :attr:`Task.dropped`). ``chapter``, the
    cause of death, is left out (it is only known for the dead, so it gives the label away), and so is
    ``sample.yr`` (calendar year of the sample, not a patient feature). Prompt tokens: sex, 5-year age
    band, the FLC group (1-10, deciles of kappa + lambda), creatinine quartile (or ``_na``) and MGUS.
    Groups: sex (F/M) and age bin (A1 <= 75 < A2), the project's normaliser and group keys.
(b) ``synthetic``: a majority (70 %) whose label follows marker m1 and a minority (30 %) whose label
    follows marker m2 (each right 90 % of the time; the other markers are noise). Base rates 0.5 and
    0.35. The oracle that reads each group's own marker has 90 % accuracy in both groups
    (:attr:`Task.oracle`): the headroom a policy has.
(c) ``diabetes``: scikit-learn's diabetes cohort (442 patients), quartile tokens, label: progression
    above the median; groups sex code and age (<= 50, > 50). The study keeps a task for training only if a
    group-blind logistic regression's gaps on it stand above its noise floor (``floor.py``).

Splits are fixed (seed :data:`SPLIT_SEED`): the rows are shuffled, 30 % go to test (stratified by
group), and 20 % of the rest to validation (stratified by group); policies train on the remainder
(``fit``). The warm start is drawn from ``fit`` per seed, skewed toward the majority group, as a
pretrained model's data are.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from verl_fair.groups.labels import GroupLabeler
from verl_fair.normalise.diagnosis import label_key

SPLIT_SEED = 20251019
FIVE_YEARS_DAYS = 5 * 365.25


@dataclass(frozen=True)
class Case:
    """One patient: prompt ``tokens``, gold ``label``, ``groups`` (attribute -> group) and the estimator's
    group ``key`` (intersectional, as :class:`~verl_fair.groups.labels.GroupLabeler` builds it)."""

    tokens: tuple[str, ...]
    label: str
    groups: dict
    key: str
    blind: tuple[str, ...]  # the tokens without the group tokens (the noise floor's group-blind features)


@dataclass
class Task:
    name: str
    labels: tuple[str, str]  # (positive, negative)
    attributes: tuple[str, ...]
    fit: list[Case]
    validation: list[Case]
    test: list[Case]
    majority: tuple[str, str]  # (attribute, group) the warm start over-represents
    balanced: bool = False  # draw training prompts with each gold label equally often (rare positives)
    dropped: dict[str, int] = field(default_factory=dict)  # rows left out, by reason
    oracle: dict[str, float] = field(default_factory=dict)  # per-group accuracy of the Bayes rule (synthetic)

    @property
    def positive(self) -> str:
        return self.labels[0]

    @property
    def positive_key(self) -> str:
        """The positive label as the reward and gap_dual normalise it."""
        return label_key(self.positive)

    def weights(self, cases: list[Case]) -> np.ndarray:
        """Sampling probability of each case: uniform, or equal total mass per gold label if ``balanced``."""
        if not self.balanced:
            return np.full(len(cases), 1 / len(cases))
        labels = [c.label for c in cases]
        counts = Counter(labels)
        weights = np.array([1 / counts[label] for label in labels])
        return weights / weights.sum()

    def warm_start(self, seed: int, size: int = 400, share: float = 0.95) -> list[Case]:
        """``size`` cases drawn from ``fit``, ``share`` of them from the majority group (with replacement)."""
        rng = np.random.default_rng([seed, 7])
        attribute, group = self.majority
        major = [c for c in self.fit if c.groups[attribute] == group]
        minor = [c for c in self.fit if c.groups[attribute] != group]
        take = int(size * share)
        return [major[i] for i in rng.choice(len(major), size=take, p=self.weights(major))] + [
            minor[i] for i in rng.choice(len(minor), size=size - take, p=self.weights(minor))
        ]


def _split(keys: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (fit, validation, test): shuffled, stratified by group key."""
    index = np.arange(len(keys))
    rest, test = train_test_split(index, test_size=0.3, random_state=SPLIT_SEED, shuffle=True, stratify=keys)
    fit, validation = train_test_split(
        rest, test_size=0.2, random_state=SPLIT_SEED + 1, shuffle=True, stratify=[keys[i] for i in rest]
    )
    return fit, validation, test


def _bins(values: pd.Series, count: int, fit: np.ndarray) -> np.ndarray:
    """Quantile bin (0 .. count-1) of each value, with the edges of the ``fit`` rows (NaN: bin ``count``)."""
    edges = np.quantile(values.iloc[fit].dropna(), np.linspace(0, 1, count + 1)[1:-1])
    return np.searchsorted(edges, values.to_numpy(), side="right")


def _groups(demographics: list[dict], labeler: GroupLabeler) -> list[tuple[str, dict]]:
    """(estimator group key, attribute -> group) of each row, read by the project's normaliser."""
    out = []
    for row in demographics:
        key, parts = labeler.key(row)
        out.append((key, {a: part for a, (part, _) in zip(labeler.attributes, parts, strict=True)}))
    return out


def _task(name, labels, labeler, demographics, group_tokens, tokens, gold, majority, **extra) -> Task:
    """Assemble the cases of each split (``tokens(fit_rows)`` gives every row's feature tokens)."""
    groups = _groups(demographics, labeler)
    fit, validation, test = _split([key for key, _ in groups])
    features = tokens(fit)
    cases = [
        Case(tuple(group_tokens[i] + features[i]), gold[i], groups[i][1], groups[i][0], tuple(features[i]))
        for i in range(len(gold))
    ]
    parts = ([cases[i] for i in rows] for rows in (fit, validation, test))
    return Task(name, labels, labeler.attributes, *parts, majority, **extra)


@cache
def flchain() -> Task:
    from sksurv.datasets import load_flchain

    features, outcome = load_flchain()
    died = outcome["death"] & (outcome["futime"] < FIVE_YEARS_DAYS)
    known = died | (outcome["futime"] >= FIVE_YEARS_DAYS)
    frame = features[known].reset_index(drop=True)
    frame.columns = [c.replace(".", "_") for c in frame.columns]
    died = died[known]

    def tokens(fit: np.ndarray) -> list[list[str]]:
        creatinine = _bins(frame["creatinine"], 4, fit)
        out = []
        for i, row in enumerate(frame.itertuples(index=False)):
            kidney = "creatinine_na" if pd.isna(row.creatinine) else f"creatinine_q{creatinine[i]}"
            out.append([f"flc_{row.flc_grp}", kidney, f"mgus_{row.mgus}"])
        return out

    demographics = [{"sex": s, "age": a} for s, a in zip(frame["sex"], frame["age"], strict=True)]
    group_tokens = [
        [f"sex_{s}", f"age_{min(int(a) // 5 * 5, 90)}"] for s, a in zip(frame["sex"], frame["age"], strict=True)
    ]
    gold = ["died" if d else "survived" for d in died]
    dropped = {"censored alive before 5 years (label unknown)": int((~known).sum())}
    labeler = GroupLabeler(("sex", "age"), (75,))
    return _task(
        "flchain", ("died", "survived"), labeler, demographics, group_tokens, tokens, gold, ("age", "A1"),
        balanced=True, dropped=dropped,
    )  # fmt: skip


@cache
def synthetic(size: int = 3000) -> Task:
    rng = np.random.default_rng(SPLIT_SEED)
    # group: (share, the marker that decides the label, how often it is right, base rate)
    spec = {"majority": (0.7, "m1", 0.9, 0.5), "minority": (0.3, "m2", 0.9, 0.35)}
    names = list(spec)
    cohort = rng.choice(names, size=size, p=[spec[g][0] for g in names])
    markers, gold = [], []
    for group in cohort:
        _, marker, reliability, base_rate = spec[group]
        positive = bool(rng.random() < base_rate)
        informative = positive if rng.random() < reliability else not positive
        values = {m: informative if m == marker else bool(rng.random() < 0.5) for m in ("m1", "m2", "m3", "m4")}
        markers.append([f"{m}_{'hi' if v else 'lo'}" for m, v in values.items()])
        gold.append("positive" if positive else "negative")
    task = _task(
        "synthetic", ("positive", "negative"), GroupLabeler(("cohort",), ()), [{"cohort": str(g)} for g in cohort],
        [[f"group_{g}"] for g in cohort], lambda fit: markers, gold, ("cohort", "majority"),
    )  # fmt: skip
    for group in names:
        members = [c for c in task.test if c.groups["cohort"] == group]
        right = [(f"{spec[group][1]}_hi" in c.tokens) == (c.label == "positive") for c in members]
        task.oracle[group] = float(np.mean(right))
    return task


@cache
def diabetes() -> Task:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    columns = ["bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    median = frame["target"].median()

    def tokens(fit: np.ndarray) -> list[list[str]]:
        bins = {c: _bins(frame[c], 4, fit) for c in columns}
        return [[f"{c}_q{bins[c][i]}" for c in columns] for i in range(len(frame))]

    demographics = [
        {"sex_code": str(int(s)), "age_bin": "le50" if a <= 50 else "gt50"}
        for s, a in zip(frame["sex"], frame["age"], strict=True)
    ]
    group_tokens = [[f"sex{d['sex_code']}", f"age_{d['age_bin']}"] for d in demographics]
    gold = ["progressed" if t > median else "stable" for t in frame["target"]]
    labeler = GroupLabeler(("sex_code", "age_bin"), ())
    return _task(
        "diabetes", ("progressed", "stable"), labeler, demographics, group_tokens, tokens, gold, ("sex_code", "1")
    )


TASKS = {"flchain": flchain, "synthetic": synthetic, "diabetes": diabetes}
