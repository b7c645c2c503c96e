# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
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

import io
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from verl_fair.groups.labels import GroupLabeler
from verl_fair.normalise.diagnosis import label_key

SPLIT_SEED = 20251019
FIVE_YEARS_DAYS = 5 * 365.25
MIN_STRATUM = 20


@dataclass(frozen=True)
class Case:
    """One patient: prompt ``tokens``, gold ``label``, ``groups`` (attribute -> group) and the estimator's
    group ``key`` (intersectional, as :class:`~verl_fair.groups.labels.GroupLabeler` builds it)."""

    tokens: tuple[str, ...]
    label: str
    groups: dict
    key: str
    blind: tuple[str, ...]  # the tokens without the group tokens (the noise floor's group-blind features)
    source: str  # the data source (domain) the estimator and the paper's metrics split by


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
    def sources(self) -> list[str]:
        return sorted({c.source for c in self.fit + self.validation + self.test})

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
    """Row indices (fit, validation, test): shuffled, stratified by ``keys`` (data source and group key;
    keys of fewer than :data:`MIN_STRATUM` rows share one stratum)."""
    counts = Counter(keys)
    keys = [key if counts[key] >= MIN_STRATUM else "rare" for key in keys]
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


def _task(name, labels, labeler, demographics, group_tokens, tokens, gold, majority, sources=None, **extra) -> Task:
    """Assemble the cases of each split (``tokens(fit_rows)`` gives every row's feature tokens; ``sources``
    each row's data source, the task's name when None)."""
    groups = _groups(demographics, labeler)
    sources = sources if sources is not None else [name] * len(gold)
    fit, validation, test = _split([f"{source}|{key}" for source, (key, _) in zip(sources, groups, strict=True)])
    features = tokens(fit)
    cases = [
        Case(tuple(group_tokens[i] + features[i]), gold[i], groups[i][1], groups[i][0], tuple(features[i]), sources[i])
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


class TaskError(ValueError):
    """A task that cannot be built (a bad task module, a missing or altered data file); the message names the fix."""


@dataclass(frozen=True)
class TableTask:
    """A task as a table, one row a patient (what a task module returns; :func:`from_table` builds it).

    ``label`` names the gold-label column, whose values must be the two ``labels`` (positive, negative);
    ``source`` the column naming each row's data source (None: one source, the task's name); ``groups`` the
    demographic columns (``sex`` and ``age`` are read as the project reads them, age binned at ``age_bins``,
    any other column is its text); ``features`` the columns the prompt shows besides the groups: numbers are
    cut at the quartiles of the fit split (missing: ``<column>_na``), anything else becomes ``<column>_<value>``.
    ``majority`` is the (group column, group) the warm start over-represents, as a pretrained model's data
    do; ``balanced`` draws training prompts with each label equally often (rare positives).
    """

    name: str
    frame: pd.DataFrame
    label: str
    labels: tuple[str, str]
    groups: tuple[str, ...]
    features: tuple[str, ...]
    majority: tuple[str, str]
    source: str | None = None
    age_bins: tuple[float, ...] = (75.0,)
    balanced: bool = False
    dropped: dict[str, int] = field(default_factory=dict)


def _word(value) -> str:
    return "_".join(str(value).split()) or "blank"


def _check_table(spec: TableTask) -> None:
    frame = spec.frame
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise TaskError(f"task {spec.name!r}: frame must be a non-empty pandas DataFrame, got {type(frame).__name__}")
    named = [spec.label, *spec.groups, *spec.features, *([spec.source] if spec.source else [])]
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise TaskError(
            f"task {spec.name!r}: column(s) {missing} not in the frame (columns: {list(frame.columns)}); "
            "name existing columns in label, source, groups and features"
        )
    if len(spec.labels) != 2 or len(set(spec.labels)) != 2:
        raise TaskError(f"task {spec.name!r}: labels must be two different values (positive, negative): {spec.labels}")
    other = sorted(set(frame[spec.label].astype(str)) - set(spec.labels))
    if other:
        raise TaskError(
            f"task {spec.name!r}: column {spec.label!r} holds {other[:5]}, not one of the labels {list(spec.labels)}; "
            "map every row to the positive or negative label, or drop it (and count it in dropped)"
        )
    if not spec.groups:
        raise TaskError(f"task {spec.name!r}: groups is empty; name at least one demographic column")
    if spec.majority[0] not in spec.groups:
        raise TaskError(f"task {spec.name!r}: majority names {spec.majority[0]!r}, not one of the groups {spec.groups}")


def from_table(spec: TableTask) -> Task:
    """The :class:`Task` of a :class:`TableTask` (checked: a bad spec raises :class:`TaskError` naming the fix)."""
    _check_table(spec)
    frame = spec.frame.reset_index(drop=True)
    labeler = GroupLabeler(spec.groups, spec.age_bins)
    demographics = frame[list(spec.groups)].to_dict("records")
    numeric = [c for c in spec.features if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].nunique() > 4]

    def tokens(fit: np.ndarray) -> list[list[str]]:
        columns = {}
        for column in spec.features:
            values = frame[column]
            if column in numeric:
                bins = _bins(values, 4, fit)
                columns[column] = [
                    f"{column}_na" if pd.isna(v) else f"{column}_q{b}" for v, b in zip(values, bins, strict=True)
                ]
            else:
                columns[column] = [f"{column}_{_word(v)}" for v in values]
        return [[columns[c][i] for c in spec.features] for i in range(len(frame))]

    keys = _groups(demographics, labeler)
    group_tokens = [[f"{a}_{_word(g[a])}" for a in spec.groups] for _, g in keys]
    majority_rows = sum(g[spec.majority[0]] == spec.majority[1] for _, g in keys)
    if not 0 < majority_rows < len(keys):
        found = sorted({g[spec.majority[0]] for _, g in keys})
        raise TaskError(
            f"task {spec.name!r}: majority group {spec.majority[1]!r} of {spec.majority[0]!r} must hold some rows but "
            f"not all; the groups as read are {found}"
        )
    sources = [_word(v) for v in frame[spec.source]] if spec.source else None
    return _task(
        spec.name, tuple(spec.labels), labeler, demographics, group_tokens, tokens,
        [str(v) for v in frame[spec.label]], tuple(spec.majority), sources=sources, balanced=spec.balanced,
        dropped=dict(spec.dropped),
    )  # fmt: skip


SURVSET_VERSION = "0.2.11"
SUPPORT_SHA256 = "07d0545efecdc168ecefc7f43bcf1b1f58d9dd9b28f38213ac176d2b7f3ab3bb"
SUPPORT_HORIZON_DAYS = 180
# Columns of SurvSet's support2 the prompt never shows, and why (every other column is a feature or a group).
SUPPORT_LEFT_OUT = {
    "pid": "row identifier",
    "event, time": "define the label",
    "num_surv2m, num_surv6m": "the SUPPORT model's 2- and 6-month survival estimates, fitted on these outcomes",
    "fac_sfdm2": "functional disability measured at 2 months or later (after baseline; one level is death)",
    "fac_dnr": "do-not-resuscitate order, mostly written after study entry (dnr after sadm) as death nears",
    "fac_dzclass": "a coarser copy of the data source (dzgroup)",
    "fac_num_co": "a copy of num_num_co",
    "num_glucose, num_bun, num_urine, num_adlp": "missing in 48-62 % of rows",
}
SUPPORT_FEATURES = (
    "source", "age", "num_num_co", "num_scoma", "num_sps", "num_hday", "num_meanbp", "num_wblc", "num_hrt", "num_resp",
    "num_temp", "num_pafi", "num_alb", "num_bili", "num_crea", "num_sod", "num_ph", "num_adls", "num_edu",
    "fac_diabetes", "fac_dementia", "fac_ca", "fac_income",
)  # fmt: skip


def _support_frame() -> pd.DataFrame:
    """SurvSet's ``support2`` table, after checking the file's SHA-256 (it is unpickled only then)."""
    import hashlib
    from importlib import resources

    try:
        path = resources.files("SurvSet") / "resources" / "pickles" / "support2.pickle"
    except ModuleNotFoundError:
        raise TaskError(f"task 'support' needs the survset package: pip install survset=={SURVSET_VERSION}") from None
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SUPPORT_SHA256:
        raise TaskError(
            f"{path}: SHA-256 {digest}, expected {SUPPORT_SHA256} (survset {SURVSET_VERSION}); "
            f"install that version: pip install survset=={SURVSET_VERSION}"
        )
    return pd.read_pickle(io.BytesIO(data))


def support_table() -> TableTask:
    """SUPPORT (Knaus et al. 1995) from SurvSet: each disease group a data source, sex x race the groups.

    Label: death within :data:`SUPPORT_HORIZON_DAYS` days of study entry (``died``) or not (``survived``);
    every patient is followed past that horizon or dies before it, so no row is dropped. The prompt shows
    the baseline (study day 3) features :data:`SUPPORT_FEATURES`, never :data:`SUPPORT_LEFT_OUT`. Race is
    white, black or other (hispanic, asian, other); a missing race is UNK (out of the race gaps).
    """
    raw = _support_frame()
    died = (raw["event"] == 1) & (raw["time"] <= SUPPORT_HORIZON_DAYS)
    known = died | (raw["time"] > SUPPORT_HORIZON_DAYS)
    race = raw["fac_race"].astype(str)
    frame = pd.DataFrame(
        {
            "source": raw["fac_dzgroup"].astype(str),
            "outcome": np.where(died, "died", "survived"),
            "sex": raw["fac_sex"].astype(str),
            "race": race.where(race.isin(["white", "black", "missing"]), "other").replace("missing", ""),
            "age": (raw["num_age"] // 10 * 10).clip(20, 90).astype(int).astype(str),
            **{c: raw[c] for c in SUPPORT_FEATURES if c not in ("source", "age")},
        }
    )[known.to_numpy()]
    return TableTask(
        "support", frame, "outcome", ("died", "survived"), ("sex", "race"), SUPPORT_FEATURES, ("race", "white"),
        source="source", dropped={f"followed less than {SUPPORT_HORIZON_DAYS} days alive": int((~known).sum())},
    )  # fmt: skip


@cache
def support() -> Task:
    return from_table(support_table())


TASKS = {"flchain": flchain, "synthetic": synthetic, "diabetes": diabetes, "support": support}
TASK_FUNCTION = "efficacy_task"


def load_task_module(path: Path) -> str:
    """Import the task file ``path``, register the task its ``efficacy_task()`` returns in :data:`TASKS`
    and return the task's name (contract: :mod:`benchmarks.efficacy.run`'s docstring)."""
    import importlib.util

    if not path.is_file():
        raise TaskError(f"--task-module {path}: no such file; give a Python file that defines {TASK_FUNCTION}()")
    module_spec = importlib.util.spec_from_file_location(f"efficacy_task_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001  (any failure of a foreign file is reported as the task's)
        raise TaskError(f"--task-module {path}: importing it failed: {type(error).__name__}: {error}") from error
    function = getattr(module, TASK_FUNCTION, None)
    if not callable(function):
        raise TaskError(f"--task-module {path}: defines no function {TASK_FUNCTION}() returning a TableTask")
    spec = function()
    if not isinstance(spec, TableTask):
        raise TaskError(
            f"--task-module {path}: {TASK_FUNCTION}() returned {type(spec).__name__}, not "
            "benchmarks.efficacy.tasks.TableTask"
        )
    if spec.name in TASKS and getattr(TASKS[spec.name], "module", None) != path:
        raise TaskError(f"--task-module {path}: task name {spec.name!r} is taken; choose another name")
    try:
        task = from_table(spec)  # checked now, not in a worker
    except TaskError as error:
        raise TaskError(f"--task-module {path}: {error}") from None
    built = cache(lambda: task)
    built.module = path
    TASKS[spec.name] = built
    return spec.name
