# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The efficacy study's analysis, tables and plots, from the ``results.json`` that :mod:`run` writes.

- :func:`analyse`: at each training budget, the paired differences of every confirmatory arm against GRPO
  over the test seeds (BCa 95 % interval, sign-flip p, Holm-adjusted over the confirmatory arms for each
  metric), the collapse and never-moved rates, the training signal, the secondary per-arm-rate comparison
  and the verdict on the goal (PROTOCOL.md): PP at least :data:`GOAL_CUT` below GRPO's with Holm-adjusted
  p below 0.05, and the lower end of F1's interval at least -:data:`GOAL_F1_LOSS`, at the last budget.
- :func:`markdown`: every table; :func:`write`: ``results.md`` and the plots in a folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.efficacy.arms import BASELINE
from benchmarks.efficacy.stats import holm, paired

COMPARED = ("F1", "PP", "EOD", "Acc", "worst_group_acc", "EOpp_pos")
GAPS = ("PP", "EOD")
GOAL_CUT, GOAL_F1_LOSS, ALPHA = 0.27, 0.01, 0.05
SHOWN = ("F1", "Acc", "PP", "EOD", "EOpp_pos", "PPV_gap_pos", "worst_group_acc", "malformed")


def arm_name(arm: str, strength: float | None) -> str:
    return arm if strength is None else f"{arm} {strength:g}"


def _phase(results: dict, phase: str) -> list[dict]:
    return [r for r in results["runs"] if r["phase"] == phase]


def _values(runs: list[dict], arm: str, strength, lr: float, budget: str, metric: str) -> dict[int, float]:
    return {
        r["spec"]["seed"]: r["budgets"][budget][metric]
        for r in runs
        if r["spec"]["arm"] == arm and r["spec"]["strength"] == strength and r["spec"]["lr"] == lr
    }


def _paired(base_runs, runs, arms: list[tuple[str, float | None, float]], base_lr: float, budget: str) -> dict:
    """name -> metric -> paired difference against GRPO at ``base_lr`` (``p_holm`` over the arms)."""
    table: dict[str, dict] = {arm_name(a, s): {} for a, s, _ in arms}
    for metric in COMPARED:
        base = _values(base_runs, BASELINE, None, base_lr, budget, metric)
        for arm, strength, lr in arms:
            values = _values(runs, arm, strength, lr, budget, metric)
            seeds = sorted(set(values) & set(base))
            table[arm_name(arm, strength)][metric] = {
                **paired(np.array([values[s] for s in seeds]), np.array([base[s] for s in seeds])),
                "seeds": len(seeds),
                "lr": lr,
            }
        for name, p in holm({name: table[name][metric]["p"] for name in table}).items():
            table[name][metric]["p_holm"] = p
    return table


def _goal(table: dict[str, dict]) -> dict:
    """The arms that meet the goal and, per arm, each condition."""
    reasons = {
        name: {
            "pp_relative": m["PP"]["relative"],
            "pp_p_holm": m["PP"]["p_holm"],
            "f1_low": m["F1"]["low"],
            "met": m["PP"]["relative"] <= -GOAL_CUT and m["PP"]["p_holm"] < ALPHA and m["F1"]["low"] >= -GOAL_F1_LOSS,
        }
        for name, m in table.items()
    }
    return {"met_by": [n for n, r in reasons.items() if r["met"]], "arms": reasons}


def analyse(results: dict) -> dict:
    """Paired differences at every budget, rates, training signal, the secondary analysis and the goal."""
    meta = results["meta"]
    lr, budgets = meta["lr"], [str(b) for b in meta["settings"]["budgets"]]
    confirmatory = _phase(results, "confirmatory")
    arms = [(a, s, lr) for a, s in meta["confirmatory"] if a != BASELINE]
    out: dict = {"paired": {b: _paired(confirmatory, confirmatory, arms, lr, b) for b in budgets}, "arms": {}}
    last = budgets[-1]
    for arm, strength in meta["confirmatory"]:
        mine = [r for r in confirmatory if r["spec"]["arm"] == arm and r["spec"]["strength"] == strength]
        out["arms"][arm_name(arm, strength)] = {
            # nan-aware: a run that never answers the positive class has no PPV gap
            "mean": {m: float(np.nanmean([r["budgets"][last][m] for r in mine])) for m in SHOWN},
            "std": {m: float(np.nanstd([r["budgets"][last][m] for r in mine])) for m in SHOWN},
            "collapsed": float(np.mean([r["collapsed"] for r in mine])),
            "unchanged": float(np.mean([r["unchanged"] for r in mine])),
            "signal_share": np.mean([r["signal_share"] for r in mine], axis=0).tolist(),
            "update_norm": np.mean([r["update_norm"] for r in mine], axis=0).tolist(),
            "seeds": len(mine),
        }
    out["goal"] = _goal(out["paired"][last])
    secondary = _phase(results, "secondary")
    moved = sorted({(r["spec"]["arm"], r["spec"]["strength"], r["spec"]["lr"]) for r in secondary}, key=str)
    out["secondary"] = _paired(confirmatory, secondary, moved, lr, last) if moved else {}
    return out


def _cell(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}" if abs(mean) < 10 else f"{mean:.2f} ± {std:.2f}"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(*names: str) -> list[str]:
    return [_row(names), _row(["---", *(["---:"] * (len(names) - 1))])]


def _difference(d: dict) -> str:
    star = " *" if d["p_holm"] < ALPHA else ""
    return f"{d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] p {d['p']:.3g}, Holm {d['p_holm']:.3g}{star}"


def _task_lines(results: dict) -> list[str]:
    task = results["meta"]["task"]
    info = results["tasks"][task]
    lines = [f"### Task: {task}", ""]
    sizes = ", ".join(f"{part} {n}" for part, n in info["sizes"].items())
    lines.append(f"Splits: {sizes}; positive class `{info['positive']}`.")
    if info["dropped"]:
        lines.append("Rows left out: " + ", ".join(f"{why}: {n}" for why, n in info["dropped"].items()) + ".")
    if info["oracle"]:
        oracle = ", ".join(f"{g} {100 * a:.1f} %" for g, a in info["oracle"].items())
        lines.append(f"Oracle (Bayes rule) accuracy per group on test: {oracle}.")
    lines += ["", *_header("data source or group", "rows (all splits)", "base rate of the positive class")]
    for name, row in {**info["sources"], **info["groups"]}.items():
        lines.append(_row([name, row["rows"], f"{row['base_rate']:.1f} %"]))
    refs = info["references"]
    lines += ["", "References on test (logistic regression) and the noise floor of the gaps:", ""]
    lines += _header("model", *refs["floor_95"], "F1", "Acc")
    for name in ("logistic", "blind"):
        ref = refs[name]
        lines.append(
            _row([name, *(f"{ref[g]:.2f}" for g in refs["floor_95"]), f"{ref['F1']:.3f}", f"{ref['Acc']:.1f}"])
        )
    for name in ("floor_median", "floor_95"):
        lines.append(_row([name, *(f"{refs[name][g]:.2f}" for g in refs[name]), "", ""]))
    return [*lines, ""]


def _selection_lines(results: dict) -> list[str]:
    selection = results["selection"]
    lines = [f"Learning rates (validation {results['meta']['selection_metric']}, mean over the selection seeds):", ""]
    grid = [str(lr) for lr in results["meta"]["lr_grid"]]
    lines += _header("arm", *grid, "chosen")
    for arm, row in selection["rates"].items():
        name = arm_name(arm, row.get("strength"))
        lines.append(_row([name, *(f"{row['scores'][lr]:.3f}" for lr in grid), f"{row['chosen']:g}"]))
    sweep = selection["sweep"]
    lines += [
        "",
        f"Validation sweep at GRPO's rate {sweep['lr']:g} (admissible: validation F1 >= {sweep['f1_floor']:.3f}, "
        "GRPO's - 0.01; the pick: lowest validation PP among admissible sweep rules):",
        "",
        *_header("configuration", "F1", "PP", "EOD", "admissible"),
    ]
    for row in sweep["table"]:
        name = arm_name(row["arm"], row["strength"])
        lines.append(_row([name, f"{row['F1']:.3f}", f"{row['PP']:.2f}", f"{row['EOD']:.2f}",
                           "yes" if row["admissible"] else "no"]))  # fmt: skip
    pick = sweep["pick"]
    lines += ["", f"Pick: {arm_name(pick['arm'], pick['strength']) if pick else 'none (no admissible rule)'}.", ""]
    return lines


def _comparison_lines(results: dict) -> list[str]:
    analysis, meta = results["analysis"], results["meta"]
    budgets = [str(b) for b in meta["settings"]["budgets"]]
    seeds = max(a["seeds"] for a in analysis["arms"].values())
    lines = [f"Test metrics after {budgets[-1]} steps, mean ± std over {seeds} seeds, all at rate {meta['lr']:g}:", ""]
    lines += _header("arm", *SHOWN, "collapsed", "never moved")
    for arm, row in analysis["arms"].items():
        cells = [_cell(row["mean"][m], row["std"][m]) for m in SHOWN]
        lines.append(_row([arm, *cells, f"{100 * row['collapsed']:.0f} %", f"{100 * row['unchanged']:.0f} %"]))
    for budget in budgets:
        lines += ["", f"Paired differences against GRPO after {budget} steps: mean [BCa 95 %], sign-flip p, "
                  "Holm over the arms (* below 0.05):", ""]  # fmt: skip
        lines += _header("arm", *COMPARED)
        for arm, metrics in analysis["paired"][budget].items():
            lines.append(_row([arm, *(_difference(metrics[m]) for m in COMPARED)]))
    if analysis["secondary"]:
        lines += ["", f"Secondary: arms at their own validation-chosen rate against GRPO at {meta['lr']:g}, "
                  f"{len(meta['seeds']['secondary'])} seeds, after {budgets[-1]} steps:", ""]  # fmt: skip
        lines += _header("arm", "rate", *COMPARED)
        for arm, metrics in analysis["secondary"].items():
            lines.append(_row([arm, f"{metrics['F1']['lr']:g}", *(_difference(metrics[m]) for m in COMPARED)]))
    lines += ["", "Training signal, mean over steps and seeds:", ""]
    lines += _header("arm", "prompts with reward variance", "update norm")
    for arm, row in analysis["arms"].items():
        lines.append(_row([arm, f"{100 * np.mean(row['signal_share']):.1f} %", f"{np.mean(row['update_norm']):.4f}"]))
    return [*lines, ""]


def _goal_lines(results: dict) -> list[str]:
    goal = results["analysis"]["goal"]
    lines = ["### Goal", ""]
    if goal["met_by"]:
        lines.append(f"Met by {', '.join(goal['met_by'])}.")
        arms = results["analysis"]["arms"]
        for arm in goal["met_by"]:
            if arms[arm]["collapsed"] >= 0.5:
                lines.append(
                    f"But {100 * arms[arm]['collapsed']:.0f} % of {arm}'s runs collapsed (one answer on at least 99 % "
                    "of the test split): its gaps are a constant answer's, not a fairer classifier's."
                )
    else:
        lines.append(
            f"Not met: no confirmatory arm cuts PP by {100 * GOAL_CUT:.0f} % or more against GRPO with Holm-adjusted "
            f"p below {ALPHA} and the lower end of F1's interval at least -{GOAL_F1_LOSS}."
        )
    arms = results["analysis"]["arms"]
    lines += ["", *_header("arm", "PP change", "PP Holm p", "F1 lower bound", "met", "runs collapsed (GRPO's)")]
    for arm, why in goal["arms"].items():
        collapsed = f"{100 * arms[arm]['collapsed']:.0f} % ({100 * arms[BASELINE]['collapsed']:.0f} %)"
        lines.append(_row([arm, f"{100 * why['pp_relative']:+.1f} %", f"{why['pp_p_holm']:.3g}",
                           f"{why['f1_low']:+.4f}", "yes" if why["met"] else "no", collapsed]))  # fmt: skip
    return [*lines, ""]


def markdown(results: dict) -> str:
    """Every table of the study as Markdown."""
    meta = results["meta"]
    lines = [
        f"Command: `{meta['command']}`; {meta['minutes']:.1f} min on {meta['machine']} with {meta['workers']} "
        f"worker processes, one torch thread each (load average before {meta['load_average_before'][0]:.1f}).",
        f"Confirmatory arms: {', '.join(arm_name(a, s) for a, s in meta['confirmatory'])}; "
        f"{len(meta['seeds']['test'])} paired test seeds; rates {meta['lr_grid']} chosen on "
        f"{len(meta['seeds']['selection'])} validation seeds; {meta['settings']['steps']} steps of "
        f"{meta['settings']['prompts']} prompts x {meta['settings']['rollouts']} rollouts; headline metrics: mean of "
        f"the last {meta['settings']['averaged']} evaluations up to each budget {meta['settings']['budgets']}.",
        "",
    ]
    lines += _task_lines(results) + _selection_lines(results) + _comparison_lines(results) + _goal_lines(results)
    return "\n".join(lines)


def _save(figure, title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_tradeoff(results: dict, path: Path) -> None:
    """F1 against PP and EOD on validation for every sweep configuration (GRPO at its rate in black)."""
    import matplotlib.pyplot as plt

    sweep = results["selection"]["sweep"]
    base = results["selection"]["rates"][BASELINE]
    figure, axes = plt.subplots(1, len(GAPS), figsize=(5 * len(GAPS), 4), squeeze=False)
    for axis, gap in zip(axes[0], GAPS, strict=True):
        for arm in dict.fromkeys(row["arm"] for row in sweep["table"]):
            rows = [row for row in sweep["table"] if row["arm"] == arm]
            axis.plot([r[gap] for r in rows], [r["F1"] for r in rows], marker="o", label=arm)
            for row in rows:
                if row["strength"] is not None:
                    axis.annotate(f"{row['strength']:g}", (row[gap], row["F1"]), fontsize=7)
        axis.axhline(sweep["f1_floor"], color="grey", linestyle="--", linewidth=0.8)
        axis.set_xlabel(f"{gap} gap (points, lower is fairer)")
        axis.set_ylabel("F1 of the positive class")
    axes[0][0].scatter([], [], color="black", label=f"GRPO F1 {base['scores'][str(sweep['lr'])]:.3f} - 0.01 (dashed)")
    axes[0][0].legend(fontsize=7)
    _save(figure, f"{results['meta']['task']}, validation: F1 against the gaps for each rule and strength", path)


def _plot_paired(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    paired_by_budget = results["analysis"]["paired"]
    arms = list(next(iter(paired_by_budget.values())))
    figure, axes = plt.subplots(1, 3, figsize=(13, 0.6 * len(arms) + 1.8), sharey=True)
    for axis, metric in zip(axes, ("F1", *GAPS), strict=True):
        for offset, (budget, table) in enumerate(paired_by_budget.items()):
            rows = [table[a][metric] for a in arms]
            y = np.arange(len(arms)) + 0.2 * offset
            axis.errorbar(
                [r["diff"] for r in rows], y, fmt="o", label=f"{budget} steps",
                xerr=[[r["diff"] - r["low"] for r in rows], [r["high"] - r["diff"] for r in rows]],
            )  # fmt: skip
        axis.axvline(0, color="grey", linewidth=0.8)
        axis.set_title(f"{metric}: arm - GRPO")
    axes[0].set_yticks(np.arange(len(arms)), arms)
    axes[-1].legend(fontsize=7)
    _save(figure, f"{results['meta']['task']}: paired differences against GRPO (test), BCa 95 % intervals", path)


def _plot_signal(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for arm, row in results["analysis"]["arms"].items():
        steps = np.arange(1, len(row["signal_share"]) + 1)
        axes[0].plot(steps, row["signal_share"], label=arm, linewidth=1)
        axes[1].plot(steps, row["update_norm"], label=arm, linewidth=1)
    axes[0].set_title("share of prompts with reward variance")
    axes[1].set_title("parameter update norm")
    for axis in axes:
        axis.set_xlabel("step")
    axes[1].legend(fontsize=7)
    _save(figure, f"{results['meta']['task']}: training signal, mean over seeds", path)


def write(results: dict, folder: Path) -> None:
    """``results.md`` and the plots (``tradeoff.png``, ``paired.png``, ``signal.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    if "analysis" not in results:
        results["analysis"] = analyse(results)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.md").write_text(markdown(results) + "\n")
    _plot_tradeoff(results, folder / "tradeoff.png")
    _plot_paired(results, folder / "paired.png")
    _plot_signal(results, folder / "signal.png")
