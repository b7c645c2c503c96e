"""The CPU demo: a short FairGRPO training run with verl's real trainer on the embedded clinical task.

    python -m verl_fair.demo [--steps 8] [--batch-size 16] [--n 4] [--output outputs/demo]
    python -m verl_fair.demo --modality image     # the same with images, into outputs/demo-image

Builds the task (scikit-learn's diabetes cohort, :mod:`verl_fair.demo.data`) and a tiny warm-started
model (:mod:`verl_fair.demo.model`), then runs ``python -m verl.trainer.main_ppo`` with the shipped
``fair_grpo_trainer`` config on the CPU backend (:mod:`verl_fair.cpu`): ``fair_grpo`` with labels,
the clinical reward, the metadata sampler, checkpointing and validation before and after training.
Prints a per-group table and writes ``verl-fair report`` output (Markdown, JSON, plots).

Everything lands in ``--output``: ``data/``, ``model/``, ``train.log`` (the trainer's output),
``metrics.jsonl`` (every logged metric, per step), ``checkpoints/``, ``validation/`` (per-sample
validation dumps) and ``report/``.

``--modality image`` swaps task and model: synthetic chest scans saved as PNG and JPEG files, where a
nodule decides the diagnosis and shows fainter or smaller for some groups (:mod:`verl_fair.demo.imaging`),
and a tiny warm-started Qwen2.5-VL with an image-only processor (:mod:`verl_fair.demo.vlm`).
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
from verl_fair.demo import data, imaging, model, vlm

MIN_MEMORY_GB = 6.0  # available RAM a run needs: its processes peak at about 5 GB (benchmarks/RESULTS.md)
TRAIN_FILES = ("train.parquet", "val.parquet")


# the task's groups (sex code, age under / over 50) for the shipped config's estimator and reward
TASK_OVERRIDES = (
    f"algorithm.fair_grpo.group_attributes=[{','.join(data.ATTRIBUTES)}]",
    "algorithm.fair_grpo.age_bins=[50]",
    "~reward.custom_reward_function.reward_kwargs.group_values",
    "+reward.custom_reward_function.reward_kwargs.group_values={sex_code:['1','2'],age:[A1,A2]}",
)


@dataclass(frozen=True)
class Modality:
    """What ``--modality`` chooses besides the task and model it builds (:func:`build_inputs`): the task's
    overrides (its groups), the model's overrides (how the host loads it) and the default output folder."""

    task_overrides: tuple[str, ...]
    model_overrides: tuple[str, ...]
    output: str


MODALITIES = {
    "text": Modality(TASK_OVERRIDES, (), "outputs/demo"),
    "image": Modality(imaging.TASK_OVERRIDES, vlm.HYDRA_OVERRIDES, "outputs/demo-image"),
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
) -> list[str]:
    """The run on the host: the task and model in ``inputs`` (data/, model/), everything written to ``output``."""
    micro = min(batch_size, 8)
    return [
        *cpu.HYDRA_OVERRIDES,
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
        "actor_rollout_ref.actor.optim.lr=3e-4",
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


def build_inputs(workdir: Path, seed: int = 0, modality: str = "text") -> None:
    """The task's parquet files in ``workdir/data`` and the warm-started tiny model in ``workdir/model``."""
    if modality == "image":
        imaging.build_inputs(workdir, seed)
        return
    code = data.prepare(["--output", str(workdir / "data"), "--val-fraction", "0.25", "--seed", str(seed)])
    if code:
        raise RuntimeError(f"preparing the demo data failed (exit code {code})")
    model.build(workdir / "model", data.examples(workdir / "data" / TRAIN_FILES[0]), majority="1", seed=seed)


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
    """Per (data source, group): prompts trained on, mean rollout reward in the first and second half of
    the run, and FairGRPO's weight and share of the advantage mass at its last step."""
    train = [r for r in records if r["step"] > 0]
    half = (len(train) + 1) // 2
    seen: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])  # prompts and reward sums per half
    last: dict[str, dict[str, float]] = defaultdict(dict)
    for index, record in enumerate(train):
        for name, value in record["data"].items():
            parts = name.split("/")
            if name.startswith("fair/train/") and len(parts) == 5 and parts[4] == "prompts":
                group = f"{parts[2]} {parts[3]}"
                reward = record["data"][f"fair/train/{parts[2]}/{parts[3]}/reward_mean"]
                slot = 0 if index < half else 2
                seen[group][slot] += value
                seen[group][slot + 1] += value * reward
            elif name.startswith("fair/estimator/") and len(parts) == 5 and parts[4] in ("weight", "adv_share"):
                last[f"{parts[2]} {parts[3]}"][parts[4]] = value
    rows = [
        f"{'data source, group':<22}{'prompts':>8}{'reward 1st half':>17}{'2nd half':>10}"
        f"{'FairGRPO weight':>17}{'adv share':>11}"
    ]
    for group in sorted(seen):
        first, first_sum, second, second_sum = seen[group]
        rows.append(
            f"{group:<22}{first + second:>8.0f}{_mean(first_sum, first):>17}{_mean(second_sum, second):>10}"
            f"{_number(last[group].get('weight')):>17}{_number(last[group].get('adv_share')):>11}"
        )
    return "\n".join(rows)


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
    parser.add_argument("--steps", type=int, default=8, help="training steps (validation before and after)")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per step")
    parser.add_argument("--n", type=int, default=4, help="rollouts per prompt")
    parser.add_argument(
        "--modality", choices=sorted(MODALITIES), default="text", help="text prompts, or image prompts with a VLM"
    )
    parser.add_argument(
        "--output", help="folder for data, model, logs, checkpoints, report (outputs/demo, outputs/demo-image)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split and the model")
    parser.add_argument(
        "--min-memory-gb", type=float, default=MIN_MEMORY_GB, help="stop at once when less RAM than this is available"
    )
    parser.add_argument(
        "overrides", nargs="*", help="more Hydra overrides for main_ppo, e.g. algorithm.fair_grpo.variant=official"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problem = check_memory(args.min_memory_gb)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    workdir = Path(args.output or MODALITIES[args.modality].output).resolve()
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh run: verl would otherwise resume the last one
    workdir.mkdir(parents=True)
    started = time.time()
    print(f"[1/3] embedded task and tiny model -> {workdir}")
    build_inputs(workdir, args.seed, args.modality)
    overrides = run_overrides(
        workdir, workdir, steps=args.steps, batch_size=args.batch_size, n=args.n, modality=args.modality
    )
    command = shipped_config_command([*overrides, *args.overrides], args.modality)
    log, metrics = workdir / "train.log", workdir / "metrics.jsonl"
    print(f"[2/3] {cpu.PLATFORM_ENV}=cpu python {shlex.join(command[1:])}\n      trainer output: {log}")
    code, peak = run_trainer(command, trainer_env(workdir), log, metrics, args.steps)
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        print(f"verl-fair demo: the trainer failed (exit code {code}); its whole output is in {log}", file=sys.stderr)
        return code
    records = read_metrics(metrics)
    print(
        f"\n[3/3] per-group training signal ({args.steps} steps, {time.time() - started:.0f} s, "
        f"peak RAM {peak:.1f} GB)\n"
    )
    print(group_table(records))
    print("\n" + validation_line(records))
    if args.modality == "image":
        print(imaging.images_line(log.read_text(errors="replace")))
    from verl_fair.cli import main as cli

    return cli(["report", str(workdir / "validation"), "--output", str(workdir / "report")])
