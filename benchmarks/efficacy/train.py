# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""One efficacy run: warm start, then on-policy RL through verl's advantage and policy-loss code.

A step samples ``prompts`` cases from the task's fit split (the same cases for every arm of a seed),
draws ``rollouts`` answers each at temperature 1, scores them with the project's clinical reward,
publishes uid -> (data source, group, gold label) as the v1 sampler does, computes advantages with
verl's ``compute_advantage`` (the arm's estimator), and updates the policy in ``mini_batches``
mini-batches with verl's ``vanilla`` policy loss (PPO clip 0.2, token-mean), AdamW (weight decay
0.01) and gradient clipping at 1.0, verl's actor defaults. Every step logs the mean reward, the share
of prompts whose rollouts differ in reward (the others carry no signal) and the norm of the parameter
update; at the evaluation steps the greedy answers on the evaluation split are scored with
``verl_fair.metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from benchmarks.efficacy.arms import ARMS, algorithm_config
from benchmarks.efficacy.policy import RESPONSE_LENGTH, Vocabulary, response_log_probs, sample, tiny_model, warm_start
from benchmarks.efficacy.tasks import TASKS, Case, Task

CONSTANT_SHARE = 0.99  # a run whose commonest answer covers this share of the evaluation split has collapsed
UNCHANGED_SHARE = 0.99  # a run agreeing this much with its warm start's answers never left it


@dataclass(frozen=True)
class Settings:
    steps: int = 60
    prompts: int = 32
    rollouts: int = 4
    mini_batches: int = 2
    eval_steps: tuple[int, ...] = (20, 25, 30, 50, 55, 60)
    averaged: int = 3  # headline metrics: mean of the last ``averaged`` evaluations up to a budget
    budgets: tuple[int, ...] = (30, 60)  # training budgets (steps) at which the headline metrics are read
    warm_start_size: int = 400
    warm_start_epochs: int = 3
    hidden: int = 32
    layers: int = 1


@dataclass(frozen=True)
class RunSpec:
    task: str
    arm: str
    lr: float
    seed: int
    split: str  # "validation" (learning-rate selection) or "test"
    strength: float | None = None  # the arm's strength knob; None: its shipped default


@dataclass
class RunResult:
    spec: RunSpec
    steps: list[int] = field(default_factory=list)  # evaluation steps
    metrics: list[dict[str, float]] = field(default_factory=list)  # one per evaluation step
    reward: list[float] = field(default_factory=list)  # per training step
    signal_share: list[float] = field(default_factory=list)  # share of prompts with reward variance
    update_norm: list[float] = field(default_factory=list)  # ||theta_after - theta_before|| per step
    collapsed: bool = False
    unchanged: bool = False
    agreement: float = 0.0  # share of final answers equal to the warm start's

    def headline(self, averaged: int, budget: int | None = None) -> dict[str, float]:
        """Each metric averaged over the last ``averaged`` evaluations at or before step ``budget`` (the end)."""
        upto = [m for step, m in zip(self.steps, self.metrics, strict=True) if budget is None or step <= budget]
        last = upto[-averaged:]
        return {k: float(np.mean([m[k] for m in last])) for k in last[0]}


def task_and_vocab(name: str) -> tuple[Task, Vocabulary]:
    task = TASKS[name]()
    return task, _vocab(name)


@lru_cache
def _vocab(name: str) -> Vocabulary:
    task = TASKS[name]()
    return Vocabulary(task.fit + task.validation + task.test, task.labels)


@lru_cache(maxsize=4096)
def score(data_source: str, response: str, gold: str) -> tuple[float, str]:
    """The clinical reward's (score, predicted label text) of one answer."""
    from verl_fair.reward_fns.clinical_diagnosis import compute_score

    found = compute_score(data_source, response, gold)
    return float(found["score"]), str(found["pred"])


def evaluate(model, task: Task, cases: list[Case]) -> tuple[dict[str, float], np.ndarray]:
    """Greedy answers on ``cases`` -> (:func:`evaluate_predictions`, each answer's code: 0 negative,
    1 positive, 2 anything else)."""
    from verl_fair.normalise.diagnosis import DEFAULT_SYNONYMS, label_key, split_labels

    vocab = _vocab(task.name)
    responses, _, _ = sample(model, vocab.prompts(cases), None, greedy=True)
    codes_of = {frozenset({task.positive_key}): 1, frozenset({label_key(task.labels[1])}): 0}
    codes = np.array(
        [
            codes_of.get(split_labels(score(task.name, vocab.decode(r), c.label)[1], DEFAULT_SYNONYMS), 2)
            for r, c in zip(responses.tolist(), cases, strict=True)
        ]
    )
    return evaluate_predictions(task, cases, codes), codes


def evaluate_predictions(task: Task, cases: list[Case], codes: np.ndarray) -> dict[str, float]:
    """Metrics of predictions ``codes`` (0 negative, 1 positive, 2 malformed) on ``cases``.

    Standard metrics (``verl_fair.metrics.standard_metrics``, fairlearn's definitions) use the positive
    class only: gold and predicted sets are {positive} or empty. The paper's metrics (``paper_metrics``)
    use both labels as classes, macro-averaged, as the paper treats a binary dataset (a malformed answer
    is an empty set, wrong for both). Gaps are averaged over the task's attributes; rates and gaps are in
    percent, F1 (the positive class's) in [0, 1].
    """
    from sklearn.metrics import f1_score

    from verl_fair.metrics.fairness import Predictions, paper_metrics, standard_metrics
    from verl_fair.normalise.diagnosis import label_key

    positive, negative = frozenset({task.positive_key}), frozenset({label_key(task.labels[1])})
    truth = np.array([c.label == task.positive for c in cases])
    groups = {a: [c.groups[a] for c in cases] for a in task.attributes}
    both = {1: positive, 0: negative, 2: frozenset()}
    paper = paper_metrics(
        Predictions(
            pd.DataFrame(
                {"data_source": [c.source for c in cases], "y_true": [positive if t else negative for t in truth],
                 "y_pred": [both[c] for c in codes], **groups}
            ),
            list(task.attributes),
        )
    )  # fmt: skip
    frame = pd.DataFrame(
        {
            "data_source": [c.source for c in cases],
            "y_true": [positive if t else frozenset() for t in truth],
            "y_pred": [positive if c == 1 else frozenset() for c in codes],
            **groups,
        }
    )
    standard = standard_metrics(Predictions(frame, list(task.attributes)))

    def gap(name: str) -> float:
        return 100 * float(np.mean([standard[a]["gaps"][name] for a in task.attributes]))

    metrics = {
        "F1": float(f1_score(truth, codes == 1, zero_division=0)),
        "Acc": 100 * float(np.mean(np.where(truth, codes == 1, codes == 0))),
        "PP": paper["PP"],
        "EOD": paper["EOD"],
        "F1_macro": paper["F1"],
        "EOpp_pos": gap("equal_opportunity_difference"),
        "PPV_gap_pos": gap("predictive_parity_difference"),
        "EOdds_pos": gap("equalized_odds_difference"),
        "worst_group_acc": gap("worst_group_accuracy"),
        "positive_rate": 100 * float(np.mean(codes == 1)),
        "malformed": 100 * float(np.mean(codes == 2)),
        "commonest_answer": 100 * float(np.bincount(codes, minlength=3).max() / len(codes)),
    }
    for attribute in task.attributes:
        for name, value in standard[attribute]["by_group"].items():
            metrics[f"acc[{attribute}={name}]"] = 100 * value["accuracy"]
            metrics[f"tpr[{attribute}={name}]"] = 100 * value["tpr"]
    return metrics


def warm_started(task_name: str, seed: int, settings: Settings) -> dict:
    """The seed's warm-started weights and their metrics on validation and test."""
    torch.set_num_threads(1)
    task, vocab = task_and_vocab(task_name)
    model = tiny_model(len(vocab.itos), seed, settings.hidden, settings.layers)
    warm_start(model, vocab, task.warm_start(seed, settings.warm_start_size), settings.warm_start_epochs, seed)
    out = {"state": {k: v.clone() for k, v in model.state_dict().items()}}
    for split in ("validation", "test"):
        out[split], out[f"{split}_codes"] = evaluate(model, task, getattr(task, split))
    return out


def train(spec: RunSpec, settings: Settings, start: dict) -> RunResult:
    """Train one arm from the seed's warm start (``start`` from :func:`warm_started`)."""
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.trainer.ppo.ray_trainer import compute_advantage

    import verl_fair.plugin  # noqa: F401  (registers fair_grpo, as verl's entry point does)
    from verl_fair.integration import context
    from verl_fair.normalise.diagnosis import label_key

    torch.set_num_threads(1)
    task, vocab = task_and_vocab(spec.task)
    evaluation = getattr(task, spec.split)
    algorithm = OmegaConf.create(algorithm_config(spec.arm, task.attributes, task.positive_key, spec.strength))
    actor = OmegaConf.create(
        {"clip_ratio": 0.2, "clip_ratio_low": 0.2, "clip_ratio_high": 0.2, "clip_ratio_c": 3.0,
         "global_batch_info": {"dp_size": 1}}
    )  # fmt: skip
    policy_loss = get_policy_loss_fn("vanilla")
    estimator = ARMS[spec.arm].estimator
    context.reset_state()
    model = tiny_model(len(vocab.itos), spec.seed, settings.hidden, settings.layers)
    model.load_state_dict(start["state"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    cases_rng = np.random.default_rng([spec.seed, 1])  # the same prompts for every arm of a seed
    generator = torch.Generator().manual_seed(spec.seed)
    result = RunResult(spec)
    weights = task.weights(task.fit)
    n = settings.rollouts
    for step in range(1, settings.steps + 1):
        cases = [task.fit[i] for i in cases_rng.choice(len(task.fit), size=settings.prompts, p=weights)]
        prompts = vocab.prompts(cases).repeat_interleave(n, dim=0)
        responses, old_log_probs, mask = sample(model, prompts, generator)
        scores = torch.tensor(
            [score(task.name, vocab.decode(r), cases[row // n].label)[0] for row, r in enumerate(responses.tolist())]
        )
        rewards = torch.zeros(len(responses), RESPONSE_LENGTH)
        rewards[torch.arange(len(responses)), mask.sum(-1) - 1] = scores
        uids = [f"{spec.seed}-{step}-{i}" for i in range(len(cases))]
        context.publish({u: (c.source, c.key, label_key(c.label)) for u, c in zip(uids, cases, strict=True)})
        data = DataProto.from_dict(
            tensors={"token_level_rewards": rewards, "response_mask": mask},
            non_tensors={"uid": np.array(uids, dtype=object).repeat(n)},
        )
        advantages = compute_advantage(data, adv_estimator=estimator, config=algorithm).batch["advantages"]
        before = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
        for rows in torch.arange(len(responses)).chunk(settings.mini_batches):
            loss, _ = policy_loss(
                old_log_prob=old_log_probs[rows],
                log_prob=response_log_probs(model, prompts[rows], responses[rows]),
                advantages=advantages[rows],
                response_mask=mask[rows],
                loss_agg_mode="token-mean",
                config=actor,
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        after = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
        per_prompt = scores.view(-1, n)
        result.reward.append(float(scores.mean()))
        result.signal_share.append(float((per_prompt.max(1).values > per_prompt.min(1).values).float().mean()))
        result.update_norm.append(float((after - before).norm()))
        if step in settings.eval_steps:
            metrics, codes = evaluate(model, task, evaluation)
            result.steps.append(step)
            result.metrics.append(metrics)
    result.agreement = float(np.mean(codes == start[f"{spec.split}_codes"]))
    result.unchanged = result.agreement >= UNCHANGED_SHARE
    result.collapsed = result.metrics[-1]["commonest_answer"] >= 100 * CONSTANT_SHARE
    return result
