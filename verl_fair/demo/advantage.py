"""Where does the learning signal go? GRPO against FairGRPO on a skewed synthetic clinical cohort.

A few training steps of a cohort with two data sources and sex x age groups of very different
sizes and difficulty run through verl's own ``compute_advantage``, once with ``grpo`` and once with
``fair_grpo``. The table shows each group's share of the prompts and of the batch's advantage mass
(sum of |A|): GRPO hands the signal out by head count, FairGRPO moves it toward small, hard groups.
"""

from __future__ import annotations

import argparse
import uuid
from collections import defaultdict

import numpy as np
import torch
from tqdm import tqdm

# (data source, group): share of prompts, chance that a rollout is correct
COHORT = {
    ("chest_xray", "M,A3"): (0.40, 0.70),
    ("chest_xray", "F,A3"): (0.25, 0.60),
    ("chest_xray", "F,A4"): (0.05, 0.25),
    ("dermatology", "M,A2"): (0.20, 0.65),
    ("dermatology", "F,A1"): (0.07, 0.45),
    ("dermatology", "UNK"): (0.03, 0.30),
}


def sample_batch(rng: np.random.Generator, prompts: int, rollouts: int):
    keys = list(COHORT)
    shares = np.array([COHORT[k][0] for k in keys])
    chosen = rng.choice(len(keys), size=prompts, p=shares / shares.sum())
    rewards, uids, sources, infos = [], [], [], []
    for c in chosen:
        (source, group), (_, p) = keys[c], COHORT[keys[c]]
        difficulty = np.clip(rng.normal(p, 0.15), 0.02, 0.98)
        uid = str(uuid.uuid4())
        for _ in range(rollouts):
            rewards.append(float(rng.random() < difficulty))
            uids.append(uid)
            sources.append(source)
            infos.append({} if group == "UNK" else {"fair_group": group})
    return (torch.tensor(rewards), np.array(uids, dtype=object), np.array(sources, dtype=object),
            np.array(infos, dtype=object), [keys[c] for c in chosen])


def run(steps: int, prompts: int, rollouts: int, seed: int):
    """Per-group shares of prompts and of advantage mass under grpo and fair_grpo."""
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    import verl_fair.plugin  # noqa: F401  (registers fair_grpo, as verl's entry point does)
    from verl_fair.integration import context

    rng = np.random.default_rng(seed)
    mass = {name: defaultdict(float) for name in ("grpo", "fair_grpo")}
    counts = defaultdict(int)
    for _ in tqdm(range(steps), desc="training steps", unit="step"):
        rewards, uids, sources, infos, keys = sample_batch(rng, prompts, rollouts)
        token_rewards = torch.zeros(len(rewards), 8)
        token_rewards[:, -1] = rewards
        for key in keys:
            counts[key] += 1
        for name in mass:
            if name == "fair_grpo":  # hand each prompt's metadata over, as verl-fair's metadata hooks do
                context.publish({uid: key for uid, key in zip(uids[::rollouts], keys)})
            data = DataProto.from_dict(
                tensors={"token_level_rewards": token_rewards,
                         "response_mask": torch.ones_like(token_rewards, dtype=torch.int64)},
                non_tensors={"uid": uids, "data_source": sources, "extra_info": infos})
            config = OmegaConf.create({"norm_adv_by_std_in_grpo": True, "fair_grpo": {}})
            advantages = compute_advantage(data, adv_estimator=name, config=config).batch["advantages"][:, -1]
            for row, value in enumerate(advantages.abs().tolist()):
                mass[name][keys[row // rollouts]] += value
    return counts, mass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts, mass = run(args.steps, args.prompts, args.rollouts, args.seed)
    total_prompts = sum(counts.values())
    totals = {name: sum(m.values()) for name, m in mass.items()}
    print(f"\n{'data source':<12} {'group':<6} {'success':>7} {'prompts':>8} {'GRPO mass':>10} {'FairGRPO mass':>14}")
    for key in COHORT:
        print(f"{key[0]:<12} {key[1]:<6} {COHORT[key][1]:>7.0%} {counts[key] / total_prompts:>8.1%} "
              f"{mass['grpo'][key] / totals['grpo']:>10.1%} {mass['fair_grpo'][key] / totals['fair_grpo']:>14.1%}")
    print("\nmass = the group's share of sum |advantage| over all steps; UNK prompts are grouped by clustering.")
    return 0
