# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Does FairGRPO close fairness gaps? A pre-registered, paired comparison of advantage rules on a tiny policy.

    python -m benchmarks.efficacy                    # the study on SUPPORT (PROTOCOL.md); writes benchmarks/efficacy/
    python -m benchmarks.efficacy --quick            # a smoke run of every phase (about a minute), writes nothing
    python -m benchmarks.efficacy --task flchain     # the same design on another task
    python -m benchmarks.efficacy --list-tasks       # each task's data sources, groups and rows
    python -m benchmarks.efficacy --task-module my_task.py --quick   # a task defined outside the repository
    python -m benchmarks.efficacy --report results.json              # re-render tables and plots

A task module is a Python file that defines ``efficacy_task()`` returning a
:class:`benchmarks.efficacy.tasks.TableTask`: a pandas DataFrame (one row a patient), the gold-label column
and its two values (positive, negative), the data-source column (or None), the demographic group columns,
the feature columns the prompt shows and the (group column, group) a pretrained model over-represents.
``--task-module`` registers it under its ``name`` and runs it (``--quick`` or the full design); a bad
module stops with a message naming the file, the field and the fix. Example::

    import pandas as pd
    from benchmarks.efficacy.tasks import TableTask

    def efficacy_task() -> TableTask:
        frame = pd.read_csv("cohort.csv")  # columns: hospital, sex, age, marker, outcome
        return TableTask("cohort", frame, label="outcome", labels=("sick", "well"), groups=("sex", "age"),
                         features=("marker",), majority=("sex", "M"), source="hospital")

Phases (PROTOCOL.md fixes them; each the same for every arm):

1. References: logistic regression with and without the group tokens, and the noise floor of the gaps.
2. GRPO's learning rate: every rate of :data:`LR_GRID` with :data:`SELECTION_SEEDS` on the validation
   split; the highest validation F1 (mean over seeds of the headline at the last budget), a tie to the
   smaller rate.
3. The validation sweep at GRPO's rate: every configuration of :data:`~benchmarks.efficacy.arms.SWEEP`
   and the two published FairGRPO forms; the pick is the lowest validation PP with validation F1 at
   least GRPO's - :data:`F1_MARGIN`. These runs are the trade-off curves (validation only).
4. Each confirmatory arm's own rate on validation (secondary analysis).
5. The confirmatory comparison: GRPO, FairGRPO as published, FairGRPO at mean 1 and the pick, all at
   GRPO's rate, :data:`TEST_SEEDS` (paired: a seed fixes the warm start, the prompts and the sampling
   noise), test split, headline metrics at every budget of ``Settings.budgets``.
6. Secondary: an arm whose own rate differs from GRPO's, at that rate, on :data:`SECONDARY_SEEDS`.

Every run uses one torch thread, whatever the number of worker processes, so the results depend on the
command only. Output: ``results.json`` (every run), ``results.md`` (the tables), plots ``*.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.efficacy.arms import ARMS, BASELINE, PUBLISHED, SWEEP
from benchmarks.efficacy.train import RunSpec, Settings, train, warm_started

HERE = Path(__file__).parent
LR_GRID = (3e-4, 1e-3, 3e-3)
SELECTION_SEEDS = (1000, 1001, 1002, 1003)
TEST_SEEDS = tuple(range(2000, 2048))  # fresh: disjoint from selection and from every earlier seed (0-63)
SECONDARY_SEEDS = TEST_SEEDS[:16]
TASK = "support"
SELECTION_METRIC = "F1"
F1_MARGIN = 0.01


def _init_worker(modules: tuple[Path, ...] = ()) -> None:
    import logging
    import warnings

    from benchmarks.efficacy.tasks import load_task_module

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import verl_fair.plugin  # noqa: F401

    for module in modules:
        load_task_module(module)


def _warm(job: tuple[str, int, Settings]) -> dict:
    return warm_started(*job)


def _train(job: tuple[RunSpec, Settings, dict]) -> dict:
    result, settings = train(*job), job[1]
    return {
        "spec": asdict(result.spec),
        "headline": result.headline(settings.averaged),
        "budgets": {str(b): result.headline(settings.averaged, b) for b in settings.budgets},
        "steps": result.steps,
        "reward": result.reward,
        "signal_share": result.signal_share,
        "update_norm": result.update_norm,
        "collapsed": result.collapsed,
        "unchanged": result.unchanged,
        "agreement": result.agreement,
    }


class Runner:
    """Runs jobs in ``workers`` processes (1: in this process), in a fixed order."""

    def __init__(self, workers: int, modules: tuple[Path, ...] = ()) -> None:
        self.pool = None
        if workers > 1:
            self.pool = ProcessPoolExecutor(
                workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(modules,)
            )
        else:
            _init_worker()

    def map(self, function, jobs: list, desc: str) -> list:
        iterator = self.pool.map(function, jobs) if self.pool else map(function, jobs)
        return list(tqdm(iterator, total=len(jobs), desc=desc, unit="run", file=sys.stderr))

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown()


class Study:
    def __init__(self, task: str, settings: Settings, runner: Runner, seeds: dict[str, tuple], lr_grid: tuple):
        self.task, self.settings, self.runner, self.seeds, self.lr_grid = task, settings, runner, seeds, lr_grid
        self.starts: dict[int, dict] = {}
        self.out: dict = {"runs": [], "warm_start": {}, "tasks": {}, "selection": {}}

    def warm(self, seeds) -> None:
        missing = [s for s in seeds if s not in self.starts]
        found = self.runner.map(_warm, [(self.task, s, self.settings) for s in missing], "warm starts")
        for seed, start in zip(missing, found, strict=True):
            self.starts[seed] = start
            self.out["warm_start"][str(seed)] = {k: start[k] for k in ("validation", "test")}

    def train(self, specs: list[RunSpec], phase: str) -> list[dict]:
        """The runs of ``specs``; a spec an earlier phase ran is not run again."""
        done = {tuple(r["spec"].values()): r for r in self.out["runs"]}
        new = [s for s in specs if tuple(asdict(s).values()) not in done]
        self.warm(sorted({s.seed for s in new}))
        runs = self.runner.map(_train, [(s, self.settings, self.starts[s.seed]) for s in new], phase)
        for run in runs:
            run["phase"] = phase
            done[tuple(run["spec"].values())] = run
        self.out["runs"] += runs
        return [done[tuple(asdict(s).values())] for s in specs]

    def references(self, shuffles: int) -> None:
        from benchmarks.efficacy.floor import references
        from benchmarks.efficacy.tasks import TASKS

        self.out["tasks"][self.task] = {**describe(TASKS[self.task]()), "references": references(
            TASKS[self.task](), shuffles)}  # fmt: skip

    def _validation(self, arm: str, lr: float, strength: float | None = None) -> list[RunSpec]:
        return [RunSpec(self.task, arm, lr, s, "validation", strength) for s in self.seeds["selection"]]

    def select_rate(self, arms: list[tuple[str, float | None]]) -> dict[str, float]:
        """Each arm's rate: the highest mean validation F1 over the grid (a tie to the smaller rate)."""
        specs = [s for arm, strength in arms for lr in self.lr_grid for s in self._validation(arm, lr, strength)]
        runs = self.train(specs, "rates")
        chosen = {}
        for arm, strength in arms:
            scores = {
                lr: float(np.mean([r["headline"][SELECTION_METRIC] for r in runs if _is(r, arm=arm, lr=lr,
                                                                                        strength=strength)]))
                for lr in self.lr_grid
            }  # fmt: skip
            chosen[arm] = min(lr for lr, value in scores.items() if value == max(scores.values()))
            self.out["selection"].setdefault("rates", {})[arm] = {
                "strength": strength, "scores": {str(k): v for k, v in scores.items()}, "chosen": chosen[arm]
            }  # fmt: skip
        return chosen

    def sweep(self, lr: float) -> dict | None:
        """Every sweep configuration and the published arms at ``lr`` on validation; the constrained pick."""
        configs = [(arm, strength) for arm, values in SWEEP.items() for strength in values]
        configs += [(arm, None) for arm in PUBLISHED]
        runs = self.train([s for arm, strength in configs for s in self._validation(arm, lr, strength)], "sweep")
        base = [r for r in self.out["runs"] if r["phase"] == "rates" and _is(r, arm=BASELINE, lr=lr)]
        floor = float(np.mean([r["headline"]["F1"] for r in base])) - F1_MARGIN
        table = []
        for arm, strength in configs:
            mine = [r for r in runs if _is(r, arm=arm, strength=strength)]
            means = {m: float(np.mean([r["headline"][m] for r in mine])) for m in ("F1", "PP", "EOD")}
            table.append({"arm": arm, "strength": strength, **means, "admissible": means["F1"] >= floor,
                          "in_sweep": arm in SWEEP})  # fmt: skip
        candidates = [row for row in table if row["in_sweep"] and row["admissible"]]
        pick = min(candidates, key=lambda row: row["PP"]) if candidates else None
        self.out["selection"]["sweep"] = {"lr": lr, "f1_floor": floor, "table": table, "pick": pick}
        return pick

    def compare(self, arms: list[tuple[str, float | None]], lr: float) -> None:
        specs = [RunSpec(self.task, a, lr, s, "test", strength) for a, strength in arms for s in self.seeds["test"]]
        self.train(specs, "confirmatory")

    def secondary(self, arms: list[tuple[str, float | None]], rates: dict[str, float], lr: float) -> None:
        moved = [(a, strength) for a, strength in arms if a != BASELINE and rates[a] != lr]
        specs = [
            RunSpec(self.task, a, rates[a], s, "test", strength)
            for a, strength in moved
            for s in self.seeds["secondary"]
        ]
        if specs:
            self.train(specs, "secondary")


def _is(run: dict, **fields) -> bool:
    return all(run["spec"][k] == v for k, v in fields.items())


def describe(task) -> dict:
    """Sizes, data sources, groups, base rates and dropped rows of a task (what --list-tasks prints)."""
    cases = task.fit + task.validation + task.test

    def share(members: list) -> dict:
        return {"rows": len(members), "base_rate": 100 * float(np.mean([c.label == task.positive for c in members]))}

    return {
        "sizes": {part: len(getattr(task, part)) for part in ("fit", "validation", "test")},
        "dropped": task.dropped,
        "oracle": task.oracle,
        "positive": task.positive,
        "balanced": task.balanced,
        "sources": {s: share([c for c in cases if c.source == s]) for s in task.sources},
        "groups": {
            f"{a}={g}": share([c for c in cases if c.groups[a] == g])
            for a in task.attributes
            for g in sorted({c.groups[a] for c in cases})
        },
    }


def list_tasks() -> str:
    from benchmarks.efficacy.tasks import TASKS

    lines = []
    for name, build in TASKS.items():
        info = describe(build())
        rows = sum(info["sizes"].values())
        lines.append(f"{name}: {rows} rows ({', '.join(f'{k} {v}' for k, v in info['sizes'].items())})")
        lines.append("  data sources: " + ", ".join(f"{s} ({v['rows']})" for s, v in info["sources"].items()))
        lines.append("  groups: " + ", ".join(f"{g} ({v['rows']})" for g, v in info["groups"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.efficacy.tasks import TASKS, TaskError, load_task_module

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every phase, 2 seeds, 6 steps; writes nothing")
    parser.add_argument("--task", help=f"the task to study (default: {TASK}, or the --task-module's)")
    parser.add_argument("--task-module", type=Path, action="append", default=[], help="a task file (see above)")
    parser.add_argument("--list-tasks", action="store_true", help="print every task's data sources, groups and rows")
    parser.add_argument("--workers", type=int, default=2, help="processes (each runs with one torch thread)")
    parser.add_argument("--out", type=Path, help="folder for results and plots (default: benchmarks/efficacy)")
    parser.add_argument("--report", type=Path, help="re-render the tables and plots from a results.json")
    args = parser.parse_args(argv)
    from benchmarks.efficacy import report

    torch.set_num_threads(1)
    try:
        modules = tuple(path.resolve() for path in args.task_module)
        names = [load_task_module(path) for path in modules]
        if args.list_tasks:
            print(list_tasks())
            return 0
        if args.report:
            results = json.loads(args.report.read_text())
            report.write(results, args.out or args.report.parent)
            return 0
        task = args.task or (names[-1] if names else TASK)
        if task not in TASKS:
            raise TaskError(f"--task {task}: no such task; the tasks are {sorted(TASKS)} (--list-tasks describes them)")
        return _study(args, task, modules, report)
    except TaskError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _study(args, task: str, modules: tuple[Path, ...], report) -> int:
    started = time.perf_counter()
    load_before = os.getloadavg()
    seeds = {"selection": SELECTION_SEEDS, "test": TEST_SEEDS, "secondary": SECONDARY_SEEDS}
    grid, settings, shuffles = LR_GRID, Settings(), 200
    out = args.out if args.out else (None if args.quick else HERE)
    if args.quick:
        grid, shuffles = (1e-3, 3e-3), 10
        seeds = {"selection": (1000,), "test": (2000, 2001), "secondary": (2000,)}
        settings = replace(
            settings, steps=6, eval_steps=(2, 3, 5, 6), budgets=(3, 6), averaged=2, warm_start_size=200,
            warm_start_epochs=2,
        )  # fmt: skip
        args.workers = 1
    runner = Runner(args.workers, modules)
    study = Study(task, settings, runner, seeds, grid)
    try:
        study.references(shuffles)
        lr = study.select_rate([(BASELINE, None)])[BASELINE]
        pick = study.sweep(lr)
        arms = [(BASELINE, None), *((a, None) for a in PUBLISHED)]
        if pick is not None:
            arms.append((pick["arm"], pick["strength"]))
        rates = {BASELINE: lr, **study.select_rate(arms[1:])}
        study.compare(arms, lr)
        study.secondary(arms, rates, lr)
    finally:
        runner.close()
    study.out["meta"] = {
        "command": "python -m benchmarks.efficacy" + (" --quick" if args.quick else "")
        + (f" --task {task}" if task != TASK else ""),
        "minutes": (time.perf_counter() - started) / 60,
        "workers": args.workers,
        "torch_threads_per_run": 1,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "settings": asdict(settings),
        "arms": {a: {"estimator": ARMS[a].estimator, "fair_grpo": ARMS[a].fair_grpo, "summary": ARMS[a].summary}
                 for a in ARMS},
        "confirmatory": [list(a) for a in arms],
        "lr": lr,
        "rates": rates,
        "lr_grid": list(grid),
        "seeds": {k: list(v) for k, v in seeds.items()},
        "task": task,
        "selection_metric": SELECTION_METRIC,
    }  # fmt: skip
    study.out["analysis"] = report.analyse(study.out)
    print(report.markdown(study.out))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(study.out, indent=None, default=float))
        report.write(study.out, out)
    return 0
