# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Validation dumps shaped as verl's ``trainer.validation_data_dir`` writes them, scored by the reward."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from verl_fair.reward_fns.clinical_diagnosis import compute_score

LABELS = ["edema", "pleural effusion", "no finding"]


def write_dumps(folder: Path, steps=(10, 20), rows: int = 600, seed: int = 0, gap_shrinks: bool = True) -> Path:
    """Dumps of a model that is worse on women over 75; with ``gap_shrinks``, less so at later steps."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for step in steps:
        lines = []
        for i in range(rows):
            sex, age = rng.choice(["F", "M"]), int(rng.integers(20, 90))
            gold = str(rng.choice(LABELS))
            hard = sex == "F" and age > 75
            penalty = 0.4 * (1 - step / 40) if gap_shrinks else 0.4
            skill = 0.85 - (penalty if hard else 0.0)
            answer = gold if rng.random() < skill else str(rng.choice([label for label in LABELS if label != gold]))
            result = compute_score(
                "chexpert" if i % 3 else "ham10000",
                f"<think>...</think> \\boxed{{{answer}}}",
                gold,
                {"demographics": {"sex": sex, "age": age}},
            )
            lines.append(
                {
                    "input": "question",
                    "output": answer,
                    "gts": gold,
                    "score": result["score"],
                    "step": step,
                    **result,
                    "uid": f"u{i}_0_0",
                }
            )
        (folder / f"{step}.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return folder


if __name__ == "__main__":  # regenerate docs/example-report (README's example)
    import tempfile

    from verl_fair.metrics import report as audit

    root = Path(__file__).parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        frame = audit.load([write_dumps(Path(scratch) / "val")], audit.Columns())
    audit.write(audit.evaluate(frame, min_group_size=30, n_boot=100), root / "docs" / "example-report")
    (root / "docs" / "example-report" / "report.json").unlink()
