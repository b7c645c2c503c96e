"""Does FairGRPO help? Train a tiny policy with each method, same seeds and hyperparameters, and compare.

    python -m benchmarks.efficacy            # 5 seeds x 8 methods x 2 tasks (about 10 minutes on 2 cores)
    python -m benchmarks.efficacy --quick    # a smoke run: 1 seed, 2 methods, a few steps
    python -m benchmarks.efficacy --write    # also write the tables and plots into benchmarks/

Each run: a tiny random causal LM, warm-started on data skewed toward the majority group (the same
start for every method of a seed), then on-policy RL steps: sample n answers per prompt, score them
with the project's clinical reward, compute advantages with verl's real ``compute_advantage`` (the
method's estimator; FairGRPO gets each prompt's data source and group through the metadata table,
as the v1 sampler provides them), and update with verl's real policy loss (``get_policy_loss_fn``,
PPO clip, token-mean). Test-set metrics (greedy answers) come from ``verl_fair.metrics``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from benchmarks.efficacy.policy import (
    RESPONSE_LENGTH,
    Vocabulary,
    response_log_probs,
    sample,
    tiny_model,
    warm_start,
)
from benchmarks.efficacy.tasks import TASKS, Task

HERE = Path(__file__).parent
METHODS = {
    "grpo": ("grpo", {}),
    "fair_grpo_paper": ("fair_grpo", {"variant": "paper"}),
    "fair_grpo_official": ("fair_grpo", {"variant": "official"}),
    "fair_grpo_label_free": ("fair_grpo", {"labels": "none"}),
    "alpha_fair_1": ("fair_grpo", {"weighting": "alpha_fair", "alpha": 1.0}),
    "alpha_fair_2": ("fair_grpo", {"weighting": "alpha_fair", "alpha": 2.0}),
    "group_dro": ("fair_grpo", {"weighting": "group_dro", "dro_step_size": 0.1}),
    "weighting_none": ("fair_grpo", {"weighting": "none"}),
}
REPORTED = ("F1", "Acc", "PP", "EOD", "Delta_F1", "sigma_F1", "F1_ES", "worst_group_accuracy")


@dataclass
class Settings:
    steps: int = 100
    prompts: int = 32
    rollouts: int = 4
    lr: float = 1e-3
    warm_start_epochs: int = 5
    eval_every: int = 10


@dataclass
class History:
    steps: list[int] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)


def evaluate(model, vocab: Vocabulary, task: Task, generator: torch.Generator) -> dict[str, float]:
    """Greedy answers on the test set -> the paper's and the standard fairness metrics."""
    from verl_fair.metrics.fairness import Predictions, paper_metrics, standard_metrics
    from verl_fair.normalise.diagnosis import DEFAULT_SYNONYMS, split_labels
    from verl_fair.reward_fns.clinical_diagnosis import compute_score

    prompts = torch.tensor([vocab.prompt(c) for c in task.test])
    responses, _, _ = sample(model, prompts, generator, greedy=True)
    rows = []
    for case, response in zip(task.test, responses.tolist(), strict=True):
        predicted = compute_score(task.name, vocab.decode(response), case.label)["pred"]
        rows.append(
            {
                "data_source": task.name,
                "y_true": split_labels(case.label, DEFAULT_SYNONYMS),
                "y_pred": split_labels(predicted, DEFAULT_SYNONYMS),
                **case.groups,
            }
        )
    predictions = Predictions(pd.DataFrame(rows), list(task.attributes))
    paper = paper_metrics(predictions)
    standard = standard_metrics(predictions)
    worst = min(standard[a]["gaps"]["worst_group_accuracy"] for a in task.attributes)
    accuracy = float(np.mean([r["y_true"] == r["y_pred"] for r in rows]))
    return {**{k: paper[k] for k in REPORTED if k in paper}, "Acc": 100 * accuracy, "worst_group_accuracy": worst}


def train(task: Task, method: str, seed: int, settings: Settings, start_state: dict, vocab: Vocabulary) -> History:
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.trainer.ppo.ray_trainer import compute_advantage

    import verl_fair.plugin  # noqa: F401  (registers fair_grpo, as verl's entry point does)
    from verl_fair.groups.labels import group_key
    from verl_fair.integration import context
    from verl_fair.reward_fns.clinical_diagnosis import compute_score

    estimator, fair = METHODS[method]
    algorithm = OmegaConf.create(
        {"norm_adv_by_std_in_grpo": True, "fair_grpo": {**fair, "group_attributes": list(task.attributes)}}
    )
    actor = OmegaConf.create(
        {
            "clip_ratio": 0.2,
            "clip_ratio_low": 0.2,
            "clip_ratio_high": 0.2,
            "clip_ratio_c": 3.0,
            "global_batch_info": {"dp_size": 1},
        }
    )
    policy_loss = get_policy_loss_fn("vanilla")
    context.reset_state()
    model = tiny_model(len(vocab.itos), seed)
    model.load_state_dict(start_state)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    history = History()
    for step in range(1, settings.steps + 1):
        cases = [task.train[i] for i in rng.integers(len(task.train), size=settings.prompts)]
        prompts = torch.tensor([vocab.prompt(c) for c in cases]).repeat_interleave(settings.rollouts, dim=0)
        responses, old_log_probs, mask = sample(model, prompts, generator)
        uids = [str(uuid.UUID(int=int(rng.integers(2**63)))) for _ in cases]
        rewards = torch.zeros(len(responses), RESPONSE_LENGTH)
        for row, response in enumerate(responses.tolist()):
            case = cases[row // settings.rollouts]
            rewards[row, int(mask[row].sum()) - 1] = compute_score(task.name, vocab.decode(response), case.label)[
                "score"
            ]
        context.publish(
            {uid: (task.name, group_key(c.groups, task.attributes)) for uid, c in zip(uids, cases, strict=True)}
        )
        data = DataProto.from_dict(
            tensors={"token_level_rewards": rewards, "response_mask": mask},
            non_tensors={"uid": np.array(uids, dtype=object).repeat(settings.rollouts)},
        )
        advantages = compute_advantage(data, adv_estimator=estimator, config=algorithm).batch["advantages"]
        loss, _ = policy_loss(
            old_log_prob=old_log_probs,
            log_prob=response_log_probs(model, prompts, responses),
            advantages=advantages,
            response_mask=mask,
            loss_agg_mode="token-mean",
            config=actor,
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.reward.append(float(rewards.sum(-1).mean()))
        if step % settings.eval_every == 0 or step == settings.steps:
            history.steps.append(step)
            history.metrics.append(evaluate(model, vocab, task, generator))
    return history


def run(tasks: list[str], methods: list[str], seeds: list[int], settings: Settings) -> dict:
    results: dict = {}
    progress = tqdm(total=len(tasks) * len(methods) * len(seeds), desc="efficacy runs", unit="run")
    for name in tasks:
        results[name] = {m: [] for m in methods}
        for seed in seeds:
            task = TASKS[name](seed)
            vocab = Vocabulary(task.train + task.test)
            start = tiny_model(len(vocab.itos), seed)
            warm_start(start, vocab, task.warm_start, settings.warm_start_epochs, seed)
            start_state = {k: v.clone() for k, v in start.state_dict().items()}
            results[name].setdefault("warm_start", []).append(
                evaluate(start, vocab, task, torch.Generator().manual_seed(seed))
            )
            for method in methods:
                results[name][method].append(train(task, method, seed, settings, start_state, vocab))
                progress.update()
    progress.close()
    return results


def summary_table(results: dict, task: str) -> list[str]:
    lines = ["| method | " + " | ".join(REPORTED) + " |", "|---|" + "---:|" * len(REPORTED)]
    for method, runs in results[task].items():
        finals = [r if isinstance(r, dict) else r.metrics[-1] for r in runs]
        cells = []
        for key in REPORTED:
            values = [f[key] for f in finals if not np.isnan(f[key])]
            mean = statistics.fmean(values) if values else float("nan")
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{mean:.3f} ± {std:.3f}" if abs(mean) < 10 else f"{mean:.2f} ± {std:.2f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def plot(results: dict, task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (gap, reward) = plt.subplots(1, 2, figsize=(11, 4))
    for method, runs in results[task].items():
        if method == "warm_start":
            continue
        steps = runs[0].steps
        gap.plot(
            steps, np.nanmean([[m["Delta_F1"] for m in r.metrics] for r in runs], axis=0), marker="o", label=method
        )
        curve = np.mean([r.reward for r in runs], axis=0)
        window = max(1, len(curve) // 15)
        reward.plot(np.convolve(curve, np.ones(window) / window, mode="valid"), label=method)
    gap.set(title=f"{task}: F1 gap between groups (test)", xlabel="step", ylabel="Delta F1")
    reward.set(title=f"{task}: mean training reward", xlabel="step", ylabel="reward")
    for axis in (gap, reward):
        axis.grid(alpha=0.3)
    reward.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, grpo and fair_grpo_paper, 6 steps")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=Settings.steps)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--write", action="store_true", help="write RESULTS tables and plots into benchmarks/")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    settings = Settings(steps=args.steps)
    methods, seeds = args.methods, list(range(args.seeds))
    if args.quick:
        settings = Settings(steps=6, eval_every=3, warm_start_epochs=3)
        methods, seeds = ["grpo", "fair_grpo_paper"], [0]
    started = time.perf_counter()
    results = run(args.tasks, methods, seeds, settings)
    minutes = (time.perf_counter() - started) / 60
    lines = [
        f"{len(seeds)} seeds, {settings.steps} steps of {settings.prompts} prompts x {settings.rollouts} "
        f"rollouts, {minutes:.1f} min on this machine. Final test metrics, mean ± std over seeds."
    ]
    for task in args.tasks:
        lines += ["", f"### Task: {task}", "", *summary_table(results, task)]
        if args.write:
            plot(results, task, HERE / f"{task}.png")
    print("\n".join(lines))
    if args.write:
        (HERE / "results.md").write_text("\n".join(lines) + "\n")
        serialisable = {
            t: {m: [r if isinstance(r, dict) else r.__dict__ for r in runs] for m, runs in by.items()}
            for t, by in results.items()
        }
        (HERE / "results.json").write_text(json.dumps(serialisable, indent=1, default=float))
    return 0
