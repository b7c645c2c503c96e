"""Does FairGRPO close fairness gaps? A matched, paired comparison of advantage rules on a tiny policy.

    python -m benchmarks.efficacy            # the study (about 20 minutes on 2 cores); writes benchmarks/efficacy/
    python -m benchmarks.efficacy --quick    # a smoke run of every phase (under a minute), writes nothing
    python -m benchmarks.efficacy --report results.json   # re-render tables and plots from saved results

Phases, each the same for every arm:

1. References per task: logistic regression with and without the group tokens, and the noise floor of
   the gaps (the group-blind model's gaps with shuffled group labels; ``floor.py``).
2. Screening of ``diabetes``: GRPO, 4 seeds at lr 1e-3; the task joins the study only if GRPO's mean PP
   or EOD on its test split stands above the floor's 95th percentile.
3. Learning-rate selection on the validation split (drawn from train, stratified by group): every arm
   runs every rate of :data:`LR_GRID` with the seeds :data:`SELECTION_SEEDS`; the criterion, fixed here,
   is the highest validation F1 of the positive class (mean over those seeds of each run's mean over its
   last evaluations); a tie goes to the smaller rate.
4. The comparison: every arm at its selected rate with :data:`TEST_SEEDS` (fresh seeds, paired: a seed
   fixes the warm start, the prompts drawn and the sampling noise), metrics on the test split.
5. Trade-off curves on ``flchain``: each rule with a strength knob at :data:`~benchmarks.efficacy.arms.STRENGTHS`,
   seeds :data:`CURVE_SEEDS`, at the rate selected for the rule.

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

from benchmarks.efficacy.arms import ARMS, BASELINE, STRENGTHS
from benchmarks.efficacy.train import RunSpec, Settings, train, warm_started

HERE = Path(__file__).parent
LR_GRID = (3e-4, 1e-3, 3e-3)
SELECTION_SEEDS = (1000, 1001)
TEST_SEEDS = tuple(range(16))
CURVE_SEEDS = tuple(range(6))
SCREEN_SEEDS, SCREEN_LR = tuple(range(4)), 1e-3
MAIN_TASKS = ("flchain", "synthetic")
CURVE_TASK = "flchain"
SELECTION_METRIC = "F1"


def _init_worker() -> None:
    import logging
    import warnings

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import verl_fair.plugin  # noqa: F401


def _warm(job: tuple[str, int, Settings]) -> dict:
    return warm_started(*job)


def _train(job: tuple[RunSpec, Settings, dict]) -> dict:
    result = train(*job)
    return {
        "spec": asdict(result.spec),
        "headline": result.headline(job[1].averaged),
        "steps": result.steps,
        "metrics": result.metrics,
        "reward": result.reward,
        "signal_share": result.signal_share,
        "update_norm": result.update_norm,
        "collapsed": result.collapsed,
        "unchanged": result.unchanged,
        "agreement": result.agreement,
    }


class Runner:
    """Runs jobs in ``workers`` processes (1: in this process), in a fixed order."""

    def __init__(self, workers: int) -> None:
        self.pool = None
        if workers > 1:
            self.pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker)
        else:
            _init_worker()

    def map(self, function, jobs: list, desc: str) -> list:
        iterator = self.pool.map(function, jobs) if self.pool else map(function, jobs)
        return list(tqdm(iterator, total=len(jobs), desc=desc, unit="run", file=sys.stderr))

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown()


class Study:
    def __init__(self, settings: Settings, runner: Runner, seeds: dict[str, tuple], lr_grid: tuple, arms: list[str]):
        self.settings, self.runner, self.seeds, self.lr_grid, self.arms = settings, runner, seeds, lr_grid, arms
        self.starts: dict[tuple[str, int], dict] = {}
        self.out: dict = {"runs": [], "warm_start": {}, "tasks": {}, "selection": {}}

    def warm(self, task: str, seeds) -> None:
        missing = [s for s in seeds if (task, s) not in self.starts]
        found = self.runner.map(_warm, [(task, s, self.settings) for s in missing], f"warm starts {task}")
        for seed, start in zip(missing, found, strict=True):
            self.starts[(task, seed)] = start
            self.out["warm_start"].setdefault(task, {})[str(seed)] = {k: start[k] for k in ("validation", "test")}

    def train(self, specs: list[RunSpec], desc: str) -> list[dict]:
        for task in {s.task for s in specs}:
            self.warm(task, sorted({s.seed for s in specs if s.task == task}))
        jobs = [(s, self.settings, self.starts[(s.task, s.seed)]) for s in specs]
        runs = self.runner.map(_train, jobs, desc)
        for run, spec in zip(runs, specs, strict=True):
            run["phase"] = desc.split()[0]
            run["spec"] = asdict(spec)
        self.out["runs"] += runs
        return runs

    def references(self, task: str, shuffles: int) -> None:
        from benchmarks.efficacy.floor import references
        from benchmarks.efficacy.tasks import TASKS

        spec = TASKS[task]()
        info = {
            "sizes": {part: len(getattr(spec, part)) for part in ("fit", "validation", "test")},
            "dropped": spec.dropped,
            "oracle": spec.oracle,
            "positive": spec.positive,
            "balanced": spec.balanced,
            "base_rates": _base_rates(spec),
            "references": references(spec, shuffles),
        }
        self.out["tasks"][task] = info

    def screen(self, task: str) -> bool:
        """GRPO's mean test gaps against the noise floor: whether ``task`` joins the study."""
        runs = self.train([RunSpec(task, BASELINE, SCREEN_LR, s, "test") for s in self.seeds["screen"]], "screen")
        floor = self.out["tasks"][task]["references"]["floor_95"]
        gaps = {g: float(np.mean([r["headline"][g] for r in runs])) for g in ("PP", "EOD")}
        keep = any(gaps[g] > floor[g] for g in gaps)
        self.out["tasks"][task]["screen"] = {"grpo_gaps": gaps, "floor_95": {g: floor[g] for g in gaps}, "kept": keep}
        return keep

    def select(self, task: str) -> dict[str, float]:
        specs = [
            RunSpec(task, arm, lr, seed, "validation")
            for arm in self.arms
            for lr in self.lr_grid
            for seed in self.seeds["selection"]
        ]
        runs = self.train(specs, f"selection {task}")
        chosen, table = {}, {}
        for arm in self.arms:
            scores = {
                lr: float(np.mean([r["headline"][SELECTION_METRIC] for r in runs if _is(r, arm=arm, lr=lr)]))
                for lr in self.lr_grid
            }
            best = max(scores.values())
            chosen[arm] = min(lr for lr, value in scores.items() if value == best)
            table[arm] = {"scores": {str(k): v for k, v in scores.items()}, "chosen": chosen[arm]}
        self.out["selection"][task] = table
        return chosen

    def compare(self, task: str, chosen: dict[str, float]) -> None:
        specs = [RunSpec(task, arm, chosen[arm], seed, "test") for arm in self.arms for seed in self.seeds["test"]]
        self.train(specs, f"comparison {task}")

    def curves(self, task: str, chosen: dict[str, float]) -> None:
        specs = [
            RunSpec(task, arm, chosen[arm], seed, "test", strength)
            for arm in STRENGTHS
            if arm in self.arms
            for strength in STRENGTHS[arm]
            for seed in self.seeds["curve"]
        ]
        self.train(specs, f"curve {task}")


def _is(run: dict, **fields) -> bool:
    return all(run["spec"][k] == v for k, v in fields.items())


def _base_rates(task) -> dict[str, float]:
    rates = {}
    for attribute in task.attributes:
        for group in sorted({c.groups[attribute] for c in task.test}):
            members = [c for c in task.test if c.groups[attribute] == group]
            rates[f"{attribute}={group}"] = 100 * float(np.mean([c.label == task.positive for c in members]))
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every phase, 3 arms, 2 seeds, 6 steps; writes nothing")
    parser.add_argument("--workers", type=int, default=2, help="processes (each runs with one torch thread)")
    parser.add_argument("--out", type=Path, help="folder for results and plots (default: benchmarks/efficacy)")
    parser.add_argument("--report", type=Path, help="re-render the tables and plots from a results.json")
    args = parser.parse_args(argv)
    from benchmarks.efficacy import report

    torch.set_num_threads(1)
    if args.report:
        results = json.loads(args.report.read_text())
        report.write(results, args.out or args.report.parent)
        return 0
    started = time.perf_counter()
    load_before = os.getloadavg()
    arms, seeds, grid, settings, shuffles = list(ARMS), {}, LR_GRID, Settings(), 200
    seeds = {"selection": SELECTION_SEEDS, "test": TEST_SEEDS, "curve": CURVE_SEEDS, "screen": SCREEN_SEEDS}
    out = args.out if args.out else (None if args.quick else HERE)
    if args.quick:
        arms, grid, shuffles = ["grpo", "fair_grpo", "gap_dual"], (1e-3, 3e-3), 10
        seeds = {"selection": (1000,), "test": (0, 1), "curve": (0, 1), "screen": (0,)}
        settings = replace(settings, steps=6, eval_steps=(3, 6), averaged=2, warm_start_size=64, warm_start_epochs=1)
        args.workers = 1
    runner = Runner(args.workers)
    study = Study(settings, runner, seeds, grid, arms)
    try:
        tasks = list(MAIN_TASKS)
        for task in (*MAIN_TASKS, "diabetes"):
            study.references(task, shuffles)
        if study.screen("diabetes"):
            tasks.append("diabetes")
        chosen = {}
        for task in tasks:
            chosen[task] = study.select(task)
            study.compare(task, chosen[task])
        study.curves(CURVE_TASK, chosen[CURVE_TASK])
    finally:
        runner.close()
    study.out["meta"] = {
        "command": "python -m benchmarks.efficacy" + (" --quick" if args.quick else ""),
        "minutes": (time.perf_counter() - started) / 60,
        "workers": args.workers,
        "torch_threads_per_run": 1,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "settings": asdict(settings),
        "arms": {a: {"estimator": ARMS[a].estimator, "fair_grpo": ARMS[a].fair_grpo, "summary": ARMS[a].summary}
                 for a in arms},
        "lr_grid": list(grid),
        "seeds": {k: list(v) for k, v in seeds.items()},
        "tasks": tasks,
        "curve_task": CURVE_TASK,
        "selection_metric": SELECTION_METRIC,
    }  # fmt: skip
    study.out["analysis"] = report.analyse(study.out)
    print(report.markdown(study.out))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(study.out, indent=None, default=float))
        report.write(study.out, out)
    return 0
