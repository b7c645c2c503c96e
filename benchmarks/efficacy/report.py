"""The efficacy study's analysis, tables and plots, from the ``results.json`` that :mod:`run` writes.

- :func:`analyse`: per task and arm, the paired differences against GRPO over the test seeds (bootstrap
  95 % interval, sign-flip p, Holm-corrected over the arms for each metric), the collapse and
  never-moved rates, the training signal, and the verdict on the goal: a rule cutting PP or EOD by at
  least :data:`GOAL_CUT` against GRPO, the interval excluding zero, F1 at most :data:`GOAL_F1_LOSS` lower.
- :func:`markdown`: every table; :func:`write`: ``results.md`` and the plots in a folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.efficacy.arms import BASELINE, STRENGTHS, default_strength
from benchmarks.efficacy.stats import holm, paired

COMPARED = ("F1", "PP", "EOD", "EOpp_pos", "PPV_gap_pos", "worst_group_acc")
GAPS = ("PP", "EOD")  # the paper's headline gaps (the goal)
GOAL_CUT, GOAL_F1_LOSS = 0.27, 0.01
GOAL_TASK = "flchain"
SHOWN = ("F1", "Acc", "PP", "EOD", "EOpp_pos", "PPV_gap_pos", "EOdds_pos", "worst_group_acc", "malformed")


def _runs(results: dict, phase: str, task: str) -> list[dict]:
    return [r for r in results["runs"] if r["phase"] == phase and r["spec"]["task"] == task]


def _by_seed(runs: list[dict], arm: str, metric: str) -> dict[int, float]:
    return {r["spec"]["seed"]: r["headline"][metric] for r in runs if r["spec"]["arm"] == arm}


def _paired_table(runs: list[dict], arms: list[str]) -> dict[str, dict[str, dict]]:
    """arm -> metric -> paired difference against the baseline (with ``p_holm`` over the arms)."""
    table: dict[str, dict[str, dict]] = {arm: {} for arm in arms if arm != BASELINE}
    for metric in COMPARED:
        base = _by_seed(runs, BASELINE, metric)
        for arm in table:
            values = _by_seed(runs, arm, metric)
            seeds = sorted(set(values) & set(base))
            table[arm][metric] = {
                **paired(np.array([values[s] for s in seeds]), np.array([base[s] for s in seeds])),
                "seeds": len(seeds),
            }
        adjusted = holm({arm: table[arm][metric]["p"] for arm in table})
        for arm, p in adjusted.items():
            table[arm][metric]["p_holm"] = p
    return table


def _goal(task: str, table: dict[str, dict[str, dict]]) -> dict:
    """The arms that meet the goal on ``task`` and, per arm, why or why not."""
    met, reasons = [], {}
    for arm, metrics in table.items():
        f1_ok = metrics["F1"]["diff"] >= -GOAL_F1_LOSS
        cuts = [g for g in GAPS if metrics[g]["relative"] <= -GOAL_CUT and metrics[g]["high"] < 0]
        if cuts and f1_ok:
            met.append(arm)
        reasons[arm] = {
            "gaps_cut": cuts,
            "f1_ok": f1_ok,
            "relative": {g: metrics[g]["relative"] for g in GAPS},
        }
    return {"task": task, "met_by": met, "arms": reasons}


def analyse(results: dict) -> dict:
    """Paired differences, rates, training signal and the goal's verdict of a study's results."""
    arms = list(results["meta"]["arms"])
    out: dict = {"tasks": {}}
    for task in results["meta"]["tasks"]:
        runs = _runs(results, "comparison", task)
        table = _paired_table(runs, arms)
        per_arm = {}
        for arm in arms:
            mine = [r for r in runs if r["spec"]["arm"] == arm]
            if not mine:
                continue
            per_arm[arm] = {
                "mean": {m: float(np.mean([r["headline"][m] for r in mine])) for m in SHOWN},
                "std": {m: float(np.std([r["headline"][m] for r in mine])) for m in SHOWN},
                "collapsed": float(np.mean([r["collapsed"] for r in mine])),
                "unchanged": float(np.mean([r["unchanged"] for r in mine])),
                "signal_share": np.mean([r["signal_share"] for r in mine], axis=0).tolist(),
                "update_norm": np.mean([r["update_norm"] for r in mine], axis=0).tolist(),
                "seeds": len(mine),
            }
        out["tasks"][task] = {"arms": per_arm, "paired": table}
        if task == GOAL_TASK:
            out["goal"] = _goal(task, table)
    return out


def _cell(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}" if abs(mean) < 10 else f"{mean:.2f} ± {std:.2f}"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(*names: str) -> list[str]:
    return [_row(names), _row(["---", *(["---:"] * (len(names) - 1))])]


def _task_lines(results: dict, task: str) -> list[str]:
    info, analysis = results["tasks"][task], results["analysis"]["tasks"][task]
    lines = [f"### Task: {task}", ""]
    sizes = ", ".join(f"{part} {n}" for part, n in info["sizes"].items())
    lines.append(f"Splits: {sizes}; positive class `{info['positive']}`.")
    if info["dropped"]:
        lines.append("Rows left out: " + ", ".join(f"{why}: {n}" for why, n in info["dropped"].items()) + ".")
    if info["oracle"]:
        oracle = ", ".join(f"{g} {100 * a:.1f} %" for g, a in info["oracle"].items())
        lines.append(f"Oracle (Bayes rule) accuracy per group on test: {oracle}.")
    rates = ", ".join(f"{g} {r:.1f} %" for g, r in info["base_rates"].items())
    lines += [f"Test base rates of the positive class: {rates}.", ""]
    refs = info["references"]
    lines += ["References on test (logistic regression) and the noise floor of the gaps:", ""]
    lines += _header("model", *refs["floor_95"], "F1", "Acc")
    for name in ("logistic", "blind"):
        ref = refs[name]
        cells = [f"{ref[g]:.2f}" for g in refs["floor_95"]]
        lines.append(_row([name, *cells, f"{ref['F1']:.3f}", f"{ref['Acc']:.1f}"]))
    for name in ("floor_median", "floor_95"):
        lines.append(_row([name, *(f"{refs[name][g]:.2f}" for g in refs[name]), "", ""]))
    lines.append("")
    selection = results["selection"].get(task, {})
    if selection:
        grid = list(next(iter(selection.values()))["scores"])
        lines += [f"Learning rate selection (validation {results['meta']['selection_metric']}):", ""]
        lines += _header("arm", *grid, "chosen")
        for arm, row in selection.items():
            lines.append(_row([arm, *(f"{row['scores'][lr]:.3f}" for lr in grid), f"{row['chosen']:g}"]))
        lines.append("")
    seeds = max(a["seeds"] for a in analysis["arms"].values())
    lines += [f"Test metrics, mean ± std over {seeds} seeds (gaps in percentage points):", ""]
    lines += _header("arm", *SHOWN, "collapsed", "never moved")
    for arm, row in analysis["arms"].items():
        cells = [_cell(row["mean"][m], row["std"][m]) for m in SHOWN]
        lines.append(_row([arm, *cells, f"{100 * row['collapsed']:.0f} %", f"{100 * row['unchanged']:.0f} %"]))
    lines += ["", "Paired differences against GRPO: mean [95 % bootstrap interval] (Holm-corrected sign-flip p):", ""]
    lines += _header("arm", *COMPARED)
    for arm, metrics in analysis["paired"].items():
        cells = [
            f"{d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] ({d['p_holm']:.3f})"
            + (" *" if d["p_holm"] < 0.05 else "")
            for d in (metrics[m] for m in COMPARED)
        ]
        lines.append(_row([arm, *cells]))
    lines += ["", "Training signal, mean over steps and seeds:", ""]
    lines += _header("arm", "prompts with reward variance", "update norm")
    for arm, row in analysis["arms"].items():
        lines.append(_row([arm, f"{100 * np.mean(row['signal_share']):.1f} %", f"{np.mean(row['update_norm']):.4f}"]))
    return [*lines, ""]


def _curve_points(results: dict) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """rule -> [(strength, mean headline)], the comparison's default strength and GRPO (strength 0) included."""
    task = results["meta"].get("curve_task", GOAL_TASK)
    curve = _runs(results, "curve", task) + _runs(results, "comparison", task)
    points: dict[str, list] = {}
    for arm in STRENGTHS:
        if arm not in results["meta"]["arms"]:
            continue
        by_strength: dict[float, list[dict]] = {}
        for run in curve:
            if run["spec"]["arm"] == BASELINE:
                by_strength.setdefault(0.0, []).append(run["headline"])
            elif run["spec"]["arm"] == arm:
                strength = run["spec"]["strength"]
                by_strength.setdefault(default_strength(arm) if strength is None else strength, []).append(
                    run["headline"]
                )
        points[arm] = [
            (s, {m: float(np.mean([h[m] for h in runs])) for m in ("F1", *GAPS)})
            for s, runs in sorted(by_strength.items())
        ]
    return points


def _goal_lines(results: dict) -> list[str]:
    goal = results["analysis"].get("goal")
    if not goal:
        return []
    lines = [f"### Goal on {goal['task']}", ""]
    if goal["met_by"]:
        lines.append(
            f"Met by {', '.join(goal['met_by'])}: PP or EOD at least {100 * GOAL_CUT:.0f} % below GRPO's, the paired "
            f"interval excluding zero, F1 at most {GOAL_F1_LOSS} below."
        )
    else:
        lines.append(
            f"No shipped rule cuts PP or EOD by {100 * GOAL_CUT:.0f} % or more against GRPO with the paired 95 % "
            f"interval excluding zero and F1 at most {GOAL_F1_LOSS} below GRPO's."
        )
    lines += ["", *_header("arm", "PP change", "EOD change", "gaps cut (interval < 0)", "F1 within 0.01")]
    for arm, why in goal["arms"].items():
        lines.append(
            _row([arm, f"{100 * why['relative']['PP']:+.0f} %", f"{100 * why['relative']['EOD']:+.0f} %",
                  ", ".join(why["gaps_cut"]) or "-", "yes" if why["f1_ok"] else "no"])
        )  # fmt: skip
    return [*lines, ""]


def markdown(results: dict) -> str:
    """Every table of the study as Markdown."""
    meta = results["meta"]
    lines = [
        f"Command: `{meta['command']}`; {meta['minutes']:.1f} min on {meta['machine']} with {meta['workers']} "
        f"worker processes, one torch thread each (load average before {meta['load_average_before'][0]:.1f}).",
        "Arms: " + ", ".join(f"`{a}` ({spec['summary']})" for a, spec in meta["arms"].items()) + ".",
        f"Seeds: {len(meta['seeds']['test'])} test seeds per arm, learning rates {meta['lr_grid']} selected on "
        f"{len(meta['seeds']['selection'])} validation seeds; {meta['settings']['steps']} steps of "
        f"{meta['settings']['prompts']} prompts x {meta['settings']['rollouts']} rollouts; headline metrics "
        f"averaged over the last {meta['settings']['averaged']} evaluations.",
        "",
    ]
    for task, info in results["tasks"].items():
        screen = info.get("screen")
        if screen:
            verdict = "kept" if screen["kept"] else "left out: GRPO's gaps are within the noise floor"
            gaps = ", ".join(f"{g} {v:.2f} (floor {screen['floor_95'][g]:.2f})" for g, v in screen["grpo_gaps"].items())
            lines += [f"Screening of {task}: GRPO's mean test gaps {gaps}; {verdict}.", ""]
    for task in meta["tasks"]:
        lines += _task_lines(results, task)
    points = _curve_points(results)
    if points:
        lines += [f"### Trade-off on {meta.get('curve_task', GOAL_TASK)} (strength 0 is GRPO)", ""]
        lines += _header("rule", "strength", "F1", *GAPS)
        for arm, rows in points.items():
            for strength, means in rows:
                lines.append(_row([arm, f"{strength:g}", f"{means['F1']:.3f}", *(f"{means[g]:.2f}" for g in GAPS)]))
        lines.append("")
    return "\n".join([*lines, *_goal_lines(results)])


def _save(figure, title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_tradeoff(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    points = _curve_points(results)
    figure, axes = plt.subplots(1, len(GAPS), figsize=(5 * len(GAPS), 4), squeeze=False)
    for axis, gap in zip(axes[0], GAPS, strict=True):
        for arm, rows in points.items():
            axis.plot([m[gap] for _, m in rows], [m["F1"] for _, m in rows], marker="o", label=arm)
            for strength, means in rows:
                axis.annotate(f"{strength:g}", (means[gap], means["F1"]), fontsize=7)
        axis.set_xlabel(f"{gap} gap (points, lower is fairer)")
        axis.set_ylabel("F1 of the positive class")
    axes[0][0].legend(fontsize=8)
    _save(
        figure,
        f"F1 against the gaps across each rule's strength ({results['meta'].get('curve_task', GOAL_TASK)})",
        path,
    )


def _plot_paired(results: dict, task: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    table = results["analysis"]["tasks"][task]["paired"]
    arms = list(table)
    figure, axes = plt.subplots(1, 3, figsize=(13, 0.5 * len(arms) + 1.5), sharey=True)
    for axis, metric in zip(axes, ("F1", *GAPS), strict=True):
        rows = [table[a][metric] for a in arms]
        y = np.arange(len(arms))
        axis.errorbar(
            [r["diff"] for r in rows], y,
            xerr=[[r["diff"] - r["low"] for r in rows], [r["high"] - r["diff"] for r in rows]], fmt="o",
        )  # fmt: skip
        axis.axvline(0, color="grey", linewidth=0.8)
        axis.set_title(f"{metric}: arm - GRPO")
    axes[0].set_yticks(np.arange(len(arms)), arms)
    _save(figure, f"{task}: paired differences against GRPO, 95 % bootstrap intervals", path)


def _plot_signal(results: dict, task: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    arms = results["analysis"]["tasks"][task]["arms"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for arm, row in arms.items():
        steps = np.arange(1, len(row["signal_share"]) + 1)
        axes[0].plot(steps, row["signal_share"], label=arm, linewidth=1)
        axes[1].plot(steps, row["update_norm"], label=arm, linewidth=1)
    axes[0].set_title("share of prompts with reward variance")
    axes[1].set_title("parameter update norm")
    for axis in axes:
        axis.set_xlabel("step")
    axes[1].legend(fontsize=7)
    _save(figure, f"{task}: training signal, mean over seeds", path)


def write(results: dict, folder: Path) -> None:
    """``results.md`` and the plots (``tradeoff.png``, ``<task>_paired.png``, ``<task>_signal.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    if "analysis" not in results:
        results["analysis"] = analyse(results)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.md").write_text(markdown(results) + "\n")
    _plot_tradeoff(results, folder / "tradeoff.png")
    for task in results["meta"]["tasks"]:
        _plot_paired(results, task, folder / f"{task}_paired.png")
        _plot_signal(results, task, folder / f"{task}_signal.png")
