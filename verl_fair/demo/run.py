# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The CPU demo: a short FairGRPO training run with verl's real trainer on the embedded clinical task.

    python -m verl_fair.demo [--steps 6] [--batch-size 16] [--n 4] [--output outputs/demo]
    python -m verl_fair.demo --modality image     # the same with images, into outputs/demo-image
    .venv-vllm/bin/python -m verl_fair.demo --rollout vllm   # rollouts by verl's vLLM server (make setup-vllm)

Builds the task (chest-pain triage vignettes, :mod:`verl_fair.demo.vignettes`) and a tiny model
warm-started on its historical records (:mod:`verl_fair.demo.model`), then runs
``python -m verl.trainer.main_ppo`` with the shipped ``fair_grpo_trainer`` config on the CPU backend
(:mod:`verl_fair.cpu`): ``fair_grpo`` with labels, the clinical reward, the metadata sampler,
checkpointing and validation before and after training. Prints a per-group table and writes
``verl-fair report`` output (Markdown, JSON, plots).

Everything lands in ``--output``: ``data/``, ``model/``, ``train.log`` (the trainer's output),
``metrics.jsonl`` (every logged metric, per step), ``checkpoints/``, ``validation/`` (per-sample
validation dumps) and ``report/``.

``--modality image`` swaps task and model: synthetic chest scans saved as PNG and JPEG files, where a
nodule decides the diagnosis and the historical reads miss most women's (:mod:`verl_fair.demo.imaging`),
and a tiny Qwen2.5-VL with an image-only processor warm-started on those reads (:mod:`verl_fair.demo.vlm`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from verl_fair import cpu
from verl_fair.cli.args import at_least
from verl_fair.demo import imaging, model, patients, vignettes, vlm

MIN_MEMORY_GB = 6.0  # available RAM a run needs: its processes peak at about 5 GB (benchmarks/RESULTS.md)
TRAIN_FILES = ("train.parquet", "val.parquet")


@dataclass(frozen=True)
class Modality:
    """What ``--modality`` chooses besides the task and model it builds (:func:`build_inputs`): the task's
    overrides (its groups), the model's overrides (how the host loads it) and the default output folder."""

    task_overrides: tuple[str, ...]
    model_overrides: tuple[str, ...]
    output: str
    positive: str  # the positive class of the binary task, for the report


MODALITIES = {
    "text": Modality(patients.TASK_OVERRIDES, (), "outputs/demo", vignettes.LABELS[0]),
    "image": Modality(patients.TASK_OVERRIDES, vlm.HYDRA_OVERRIDES, "outputs/demo-image", imaging.LABELS[0]),
}


def run_overrides(
    inputs: Path,
    output: Path,
    *,
    steps: int,
    batch_size: int,
    n: int,
    save_freq: int | None = None,
    modality: str = "text",
    rollout: str = cpu.ROLLOUT_NAME,
) -> list[str]:
    """The run on the host: the task and model in ``inputs`` (data/, model/), everything written to ``output``;
    rollouts by the CPU backend's ``transformers`` server or verl's ``vllm`` one."""
    micro = min(batch_size, 8)
    return [
        *cpu.overrides(rollout),
        *MODALITIES[modality].model_overrides,
        f"data.train_files={inputs / 'data' / TRAIN_FILES[0]}",
        f"data.val_files={inputs / 'data' / TRAIN_FILES[1]}",
        f"data.train_batch_size={batch_size}",
        "data.max_prompt_length=192",
        "data.max_response_length=16",
        f"actor_rollout_ref.model.path={inputs / 'model'}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.rollout.n={n}",
        "actor_rollout_ref.actor.optim.lr=1e-3",
        f"trainer.total_training_steps={steps}",
        f"trainer.test_freq={steps}",
        f"trainer.save_freq={save_freq or steps}",
        f"trainer.default_local_dir={output / 'checkpoints'}",
        f"trainer.validation_data_dir={output / 'validation'}",
        "trainer.logger=[console,file]",
        "trainer.project_name=verl-fair",
        "trainer.experiment_name=cpu-demo",
    ]


def shipped_config_command(overrides: Sequence[str], modality: str = "text") -> list[str]:
    """``main_ppo`` with the shipped ``fair_grpo_trainer`` config, the task's groups and ``overrides``."""
    from verl_fair.configs import folder as configs_folder

    return [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        f"--config-path={configs_folder()}",
        "--config-name=fair_grpo_trainer",
        *MODALITIES[modality].task_overrides,
        *overrides,
    ]


def trainer_env(output: Path) -> dict[str, str]:
    return {
        **os.environ,
        cpu.PLATFORM_ENV: "cpu",
        "VERL_FILE_LOGGER_PATH": str(output / "metrics.jsonl"),
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def build_inputs(
    workdir: Path, seed: int = 0, modality: str = "text", warm_epochs: int = 12, rollout: str = cpu.ROLLOUT_NAME
) -> None:
    """The task's parquet files in ``workdir/data`` and the tiny model in ``workdir/model``, warm-started for
    ``warm_epochs`` on the text task's records (fewer: rewards vary on most prompts, not mainly the missed ones);
    for vLLM with attention heads of 32, the smallest size its CPU attention takes."""
    if modality == "image":
        imaging.build_inputs(workdir, seed)
        return
    options = ["--output", str(workdir / "data"), "--val-fraction", "0.25", "--seed", str(seed)]
    code = vignettes.prepare(workdir / "vignettes", options, seed=seed)
    if code:
        raise RuntimeError(f"preparing the demo data failed (exit code {code})")
    records = vignettes.examples(workdir / "data" / TRAIN_FILES[0], workdir / "vignettes" / patients.TABLE)
    model.build(workdir / "model", records, epochs=warm_epochs, seed=seed, heads=2 if rollout == "vllm" else 4)


def read_metrics(path: Path) -> list[dict]:
    """The file logger's records: ``{"step": int, "data": {name: value}}``, one per logged step."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_trainer(command: list[str], env: dict[str, str], log: Path, metrics: Path, steps: int) -> tuple[int, float]:
    """Run the trainer with its output in ``log`` and a progress bar over steps; (exit code, peak RAM in GB)."""
    from tqdm import tqdm

    peak = 0.0
    with log.open("w") as out, tqdm(total=steps, desc="starting Ray, workers and model", unit="step") as bar:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        while process.poll() is None:
            time.sleep(1.0)
            peak = max(peak, tree_memory_gb(process.pid))
            done = max((r["step"] for r in read_metrics(metrics)), default=None)  # step 0: first validation
            if done is not None and (done > bar.n or bar.desc.startswith("starting")):
                bar.set_description("training (validation at the start and the end)", refresh=False)
                bar.update(done - bar.n)
            elif sys.stderr.isatty():
                bar.refresh()  # keep the clock running on a terminal; log files get one line per step
    return process.returncode, peak


def tree_memory_gb(pid: int) -> float:
    """Memory of a process and all its descendants (Ray's workers included), in GB: the sum of their
    proportional set sizes, so that libraries shared between workers count once."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 1e9


def group_table(records: list[dict]) -> str:
    """Per (data source, group): prompts trained on and their share, mean rollout reward in the first and
    second half of the run, FairGRPO's mean weight and the group's mean share of the advantage mass over the
    steps the estimator reported (a share above the prompt share: the estimator leans towards the group)."""
    train = [r for r in records if r["step"] > 0]
    half = (len(train) + 1) // 2
    seen: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])  # prompts and reward sums per half
    weights: dict[str, list[float]] = defaultdict(list)
    shares: dict[str, float] = defaultdict(float)
    reported = 0
    for index, record in enumerate(train):
        reported += any(name.startswith("fair/estimator/") for name in record["data"])
        for name, value in record["data"].items():
            parts = name.split("/")
            if len(parts) != 5:
                continue
            group = f"{parts[2]} {parts[3]}"
            if name.startswith("fair/train/") and parts[4] == "prompts":
                reward = record["data"][f"fair/train/{parts[2]}/{parts[3]}/reward_mean"]
                slot = 0 if index < half else 2
                seen[group][slot] += value
                seen[group][slot + 1] += value * reward
            elif name.startswith("fair/estimator/") and parts[4] == "weight":
                weights[group].append(value)
            elif name.startswith("fair/estimator/") and parts[4] == "adv_share":
                shares[group] += value
    total = sum(first + second for first, _, second, _ in seen.values())
    rows = [
        f"{'data source, group':<22}{'prompts':>8}{'share':>7}{'reward 1st half':>17}{'2nd half':>10}"
        f"{'FairGRPO weight':>17}{'advantage share':>17}"
    ]
    for group in sorted(seen):
        first, first_sum, second, second_sum = seen[group]
        weight = sum(weights[group]) / len(weights[group]) if weights[group] else None
        share = shares[group] / reported if reported else None
        rows.append(
            f"{group:<22}{first + second:>8.0f}{_percent((first + second) / total):>7}{_mean(first_sum, first):>17}"
            f"{_mean(second_sum, second):>10}{_number(weight):>17}{_percent(share):>17}"
        )
    return "\n".join(rows)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _mean(total: float, count: float) -> str:
    return f"{total / count:.2f}" if count else "-"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def validation_line(records: list[dict]) -> str:
    """Validation accuracy and worst-group accuracy before and after training."""
    validations = [r for r in records if any(k.startswith("val-core/") for k in r["data"])]
    if len(validations) < 2:
        return "validation: fewer than two validations logged"
    first, final = validations[0]["data"], validations[-1]["data"]
    accuracy = next(k for k in first if k.startswith("val-core/") and k.endswith("/acc/mean@1"))
    parts = [f"accuracy {first[accuracy]:.3f} -> {final.get(accuracy, float('nan')):.3f}"]
    for key in sorted(k for k in first if k.startswith("val-fair/all/") and k.endswith("acc_worst_group")):
        attribute = key.split("/")[2]
        parts.append(f"worst {attribute} group {first[key]:.3f} -> {final.get(key, float('nan')):.3f}")
    return f"validation (step {validations[0]['step']} -> {validations[-1]['step']}): " + ", ".join(parts)


def gaps_line(report: dict) -> str:
    """The report's gaps at the first and the last validation."""
    steps = report.get("steps") or {}
    if len(steps) < 2:
        return "fairness gaps: one validation only"
    first, last = (min(steps, key=int), max(steps, key=int))
    names = {
        "equal_opportunity_difference": "equal opportunity difference",
        "equalized_odds_difference": "equalized odds difference",
        "worst_group_accuracy": "worst-group accuracy",
    }
    parts = [f"{label} {_number(steps[first][key])} -> {_number(steps[last][key])}" for key, label in names.items()]
    return f"fairness gaps (step {first} -> {last}, every attribute averaged): " + ", ".join(parts)


def check_memory(required_gb: float) -> str | None:
    """A message when the machine has less available RAM than a run needs, else None."""
    available = psutil.virtual_memory().available / 1e9
    if available >= required_gb:
        return None
    return (
        f"verl-fair demo: {available:.1f} GB of RAM available, the CPU run needs about {required_gb:.1f} GB "
        "(Ray, a trainer worker, a rollout server and TransferQueue). Close other programs, or pass "
        "--min-memory-gb to try anyway."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m verl_fair.demo", description=__doc__.split("\n\n")[0])
    positive = at_least(1)
    parser.add_argument("--steps", type=positive, default=6, help="training steps (validation before and after)")
    parser.add_argument("--batch-size", type=positive, default=16, help="prompts per step")
    parser.add_argument("--n", type=positive, default=4, help="rollouts per prompt")
    parser.add_argument(
        "--modality", choices=sorted(MODALITIES), default="text", help="text prompts, or image prompts with a VLM"
    )
    parser.add_argument(
        "--rollout",
        choices=cpu.ROLLOUTS,
        default=cpu.ROLLOUT_NAME,
        help="who generates: the CPU backend's transformers server (fastest here), or verl's vLLM server "
        "(run with .venv-vllm/bin/python, made by make setup-vllm)",
    )
    parser.add_argument(
        "--output", help="folder for data, model, logs, checkpoints, report (outputs/demo, outputs/demo-image)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split and the model")
    parser.add_argument(
        "--min-memory-gb", type=float, default=MIN_MEMORY_GB, help="stop at once when less RAM than this is available"
    )
    parser.add_argument(
        "--compare-grpo",
        action="store_true",
        help="then train GRPO from the same model, data and seed and print FairGRPO's delta report against it",
    )
    parser.add_argument(
        "overrides", nargs="*", help="more Hydra overrides for main_ppo, e.g. algorithm.fair_grpo.variant=official"
    )
    return parser.parse_args(argv)


def train(command: list[str], output: Path, steps: int) -> tuple[list[dict], float] | int:
    """One trainer run writing into ``output``: (its logged metrics, peak RAM in GB), or its exit code on failure."""
    output.mkdir(parents=True, exist_ok=True)
    log, metrics = output / "train.log", output / "metrics.jsonl"
    print(f"      {cpu.PLATFORM_ENV}=cpu python {shlex.join(command[1:])}\n      trainer output: {log}")
    code, peak = run_trainer(command, trainer_env(output), log, metrics, steps)
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        print(f"verl-fair demo: the trainer failed (exit code {code}); its whole output is in {log}", file=sys.stderr)
        return code
    return read_metrics(metrics), peak


def main(argv: Sequence[str] | None = None) -> int:
    from verl_fair.cli import main as cli

    args = parse_args(argv)
    problem = check_memory(args.min_memory_gb)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.rollout == "vllm":
        from verl_fair.cpu import vllm_rollout

        seen, why = vllm_rollout.visibility()
        if not seen:
            print(f"verl-fair demo: --rollout vllm needs vLLM where verl can see it: {why}", file=sys.stderr)
            return 2
    workdir = Path(args.output or MODALITIES[args.modality].output).resolve()
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh run: verl would otherwise resume the last one
    workdir.mkdir(parents=True)
    started = time.time()
    stages = 4 if args.compare_grpo else 3
    print(f"[1/{stages}] embedded task and tiny model -> {workdir}")
    build_inputs(workdir, args.seed, args.modality, rollout=args.rollout)

    def command(output: Path, *extra: str) -> list[str]:
        overrides = run_overrides(
            workdir,
            output,
            steps=args.steps,
            batch_size=args.batch_size,
            n=args.n,
            modality=args.modality,
            rollout=args.rollout,
        )
        return shipped_config_command([*overrides, *args.overrides, *extra], args.modality)

    print(f"[2/{stages}] FairGRPO")
    result = train(command(workdir), workdir, args.steps)
    if isinstance(result, int):
        return result
    records, peak = result
    print(
        f"\n[3/{stages}] per-group training signal ({args.steps} steps, {time.time() - started:.0f} s, "
        f"peak RAM {peak:.1f} GB)\n"
    )
    print(group_table(records))
    print("\n" + validation_line(records))
    if args.modality == "image":
        print(imaging.images_line((workdir / "train.log").read_text(errors="replace")))
    positive = ["--positive-label", MODALITIES[args.modality].positive]
    code = cli(["report", str(workdir / "validation"), "--output", str(workdir / "report"), *positive])
    if code:
        return code
    print(gaps_line(json.loads((workdir / "report" / "report.json").read_text())))
    if not args.compare_grpo:
        return 0
    print(f"\n[4/{stages}] GRPO from the same model, data and seed -> {workdir / 'grpo'}")
    result = train(command(workdir / "grpo", "algorithm.adv_estimator=grpo"), workdir / "grpo", args.steps)
    if isinstance(result, int):
        return result
    print(validation_line(result[0]).replace("validation", "GRPO validation", 1))
    delta = workdir / "report" / "fair_grpo_vs_grpo"
    code = cli(
        ["report", "--compare", str(workdir / "grpo" / "validation"), str(workdir / "validation")]
        + ["--output", str(delta), *positive]
    )
    if code == 0:
        print((delta / "delta.md").read_text())
    return code
