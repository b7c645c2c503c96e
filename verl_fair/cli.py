"""The ``verl-fair`` command line: ``doctor``, ``prepare``, ``discover``, ``report``, ``config-dir`` and
``cpu-overrides``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib import metadata, resources

SUPPORTED_VERL = ("0.9.1", "0.10")

# Runs in a fresh interpreter, as verl's Ray workers start: import verl, then what a run loads.
PROBE = """
import importlib, json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
import verl
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY as registry
fn = registry.get("fair_grpo")
imports = {}
for name in ("ray", "transfer_queue", "verl_fair.integration.sampler", "verl_fair.integration.checkpoint"):
    try:
        importlib.import_module(name)
        imports[name] = None
    except Exception as error:
        imports[name] = repr(error)
print(json.dumps({"verl": verl.__version__, "registered": fn is not None,
                  "module": getattr(fn, "__module__", None), "imports": imports}))
"""


def doctor(config_path: str | None, config_name: str, overrides: list[str]) -> int:
    """Check the installation in a fresh process, then what a run with these overrides will do."""
    from packaging.version import Version

    ok = True
    entry_points = [ep for ep in metadata.entry_points(group="verl.plugins") if ep.value.startswith("verl_fair")]
    if entry_points:
        print(
            f"[ok] verl-fair {metadata.version('verl-fair')}, entry point {entry_points[0].name} = {entry_points[0].value}"
        )
    else:
        ok = False
        print("[FAIL] verl-fair has no verl.plugins entry point: pip-install it (PYTHONPATH is not enough).")
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    if probe.returncode != 0:
        print("[FAIL] `import verl` failed in a fresh process:\n" + probe.stderr[-3000:])
        return 1
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    low, high = SUPPORTED_VERL
    if Version(low) <= Version(found["verl"]) < Version(high):
        print(f"[ok] verl {found['verl']} (supported: >={low},<{high})")
    else:
        ok = False
        print(f"[FAIL] verl {found['verl']} is outside the supported range >={low},<{high}")
    if found["registered"]:
        print(f"[ok] fair_grpo registered by {found['module']} in a fresh process")
    else:
        ok = False
        failures = [line for line in probe.stderr.splitlines() if "plugin" in line.lower()]
        print(
            "[FAIL] fair_grpo is NOT registered after `import verl`.\n"
            + ("\n".join(failures[-10:]) or "No plugin error was logged; is VERL_USE_EXTERNAL_PLUGINS set to 'none'?")
        )
    for name, error in found["imports"].items():
        ok &= error is None
        print(f"[ok] import {name}" if error is None else f"[FAIL] import {name}: {error}")
    return _plan(config_path, config_name, overrides) if ok else 1


def _plan(config_path: str | None, config_name: str, overrides: list[str]) -> int:
    from hydra import compose, initialize_config_dir

    from verl_fair.integration.preflight import plan_run

    if config_path is None:
        config_path = str(configs_folder()) if config_name != "ppo_trainer" else _verl_config_dir()
    try:
        with initialize_config_dir(config_dir=os.path.abspath(config_path), version_base=None):
            config = compose(config_name=config_name, overrides=overrides)
    except Exception as error:  # Hydra's errors name the bad override
        print(f"[FAIL] composing {config_name} with {overrides}: {error}")
        return 1
    plan = plan_run(config)
    print(f"\nA run of {config_name} {' '.join(overrides)}:")
    for fact in plan.facts:
        print(f"  - {fact}")
    for problem in plan.problems:
        print(f"[FAIL] {problem}")
    return 1 if plan.problems else 0


def _verl_config_dir() -> str:
    import verl

    return os.path.join(verl.__path__[0], "trainer", "config")


def configs_folder():
    """The folder of the shipped YAML configurations."""
    return resources.files("verl_fair").joinpath("configs")


def prepare(args: argparse.Namespace) -> int:
    """Convert a clinical dataset into verl parquet files (train, val) with demographics in extra_info."""
    from pathlib import Path

    from verl_fair.data import prepare as data

    report = data.Report()
    source = Path(args.input)
    if args.format == "jsonl":
        examples = data.read_jsonl(source, args.attribute or [])
    else:
        spec = data.TableSpec(
            data_source=args.data_source,
            data_source_column=args.data_source_column,
            label_column=args.label_column,
            label_columns=args.label_columns or (),
            positive_values=args.positive_values,
            label_map=_pairs(args.label_map, "--label-map"),
            image_column=args.image_column,
            image_template=args.image_template,
            image_roots=[Path(r) for r in args.image_root or []],
            image_suffix=args.image_suffix,
            sex_column=args.sex_column,
            age_column=args.age_column,
            attribute_columns=_pairs(args.attribute_column, "--attribute-column"),
            question=args.question,
            id_column=args.id_column,
            joins=[_join(item) for item in args.join or []],
        )
        examples = data.read_table(source, spec)
    output = Path(args.output)
    try:
        data.prepare(
            examples,
            output,
            val_fraction=args.val_fraction,
            seed=args.seed,
            embed_images=args.images == "embed",
            on_error=args.on_error,
            report=report,
            balance=args.balance,
            group_attributes=args.group_attributes,
        )
    except (ValueError, OSError) as error:
        print(f"verl-fair prepare: {error}", file=sys.stderr)
        return 2
    print(data.write_summary(report, output, args.min_group_size))
    return 0


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} {item!r}: expected NAME=VALUE")
        pairs[key] = value
    return pairs


def _join(item: str) -> tuple:
    from pathlib import Path

    path, sep, columns = item.rpartition(":")
    here, _, there = columns.partition("=")
    if not sep or not path or not here:
        raise SystemExit(f"--join {item!r}: expected FILE:COLUMN or FILE:COLUMN_HERE=COLUMN_THERE")
    return Path(path), here, there or here


def _prepare_parser(commands) -> None:
    parser = commands.add_parser("prepare", help=prepare.__doc__)
    parser.add_argument(
        "format", choices=["jsonl", "table"], help="jsonl: the FairGRPO authors' layout; table: a CSV or Parquet file"
    )
    parser.add_argument("input", help="the .jsonl, .csv or .parquet file")
    parser.add_argument("--output", required=True, help="folder for train.parquet, val.parquet, summary.json")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the deterministic split")
    parser.add_argument(
        "--images",
        choices=["embed", "path"],
        default="embed",
        help="embed image bytes in the parquet, or keep absolute paths",
    )
    parser.add_argument(
        "--on-error",
        choices=["skip", "stop"],
        default="skip",
        help="skip bad rows (each reported, counted in summary.json) or stop at the first",
    )
    parser.add_argument("--min-group-size", type=int, default=30, help="flag (data source, group)s below this")
    parser.add_argument(
        "--balance",
        action="store_true",
        help="also write train_balanced.parquet: every group oversampled to its data source's largest",
    )
    parser.add_argument("--attribute", action="append", help="jsonl: another demographic key of the demo string")
    parser.add_argument(
        "--group-attributes",
        nargs="+",
        default=["sex", "age"],
        help="attributes whose combination is a group (for the group counts and --balance)",
    )
    table = parser.add_argument_group("table")
    table.add_argument("--data-source", help="the data source (domain) of every row")
    table.add_argument("--data-source-column")
    table.add_argument("--label-column", help="column holding the diagnosis (several labels separated by ',')")
    table.add_argument("--label-columns", nargs="+", help="one-hot columns; a row's labels are those set positive")
    table.add_argument("--positive-values", nargs="+", default=["1", "1.0", "true", "yes"])
    table.add_argument("--label-map", action="append", help="CODE=NAME, e.g. mel=melanoma (repeatable)")
    table.add_argument("--image-column")
    table.add_argument(
        "--image-template", help="image path from columns, e.g. 'ct/{PatientNumber:0>3}/{SliceNumber}.jpg'"
    )
    table.add_argument(
        "--image-root", nargs="+", help="folders searched in order for each image (default: the table's)"
    )
    table.add_argument("--image-suffix", default="", help="appended to the image column, e.g. .jpg")
    table.add_argument("--sex-column")
    table.add_argument("--age-column")
    table.add_argument("--attribute-column", action="append", help="NAME=COLUMN, e.g. race=Race (repeatable)")
    table.add_argument(
        "--question",
        default="What is the diagnosis?",
        help="question text; {column} placeholders are filled from the row",
    )
    table.add_argument("--id-column", help="stable row id for the split (default: the image path)")
    table.add_argument(
        "--join",
        action="append",
        help="FILE:COLUMN or FILE:COLUMN_HERE=COLUMN_THERE, a left join (e.g. patient demographics)",
    )


def discover(args: argparse.Namespace) -> int:
    """Cluster per-sample feature vectors (e.g. image embeddings) into extra_info.fair_group, per data source."""
    from pathlib import Path

    from verl_fair.groups.discover import discover as run

    try:
        report = run(
            Path(args.input),
            Path(args.output),
            args.feature_column,
            k=args.k,
            k_max=args.k_max,
            seed=args.seed,
            prefix=args.prefix,
            data_source_key=args.data_source_key,
            attributes=args.group_attributes,
            overwrite=args.overwrite,
        )
    except (ValueError, OSError) as error:
        print(f"verl-fair discover: {error}", file=sys.stderr)
        return 2
    for source, entry in report["data_sources"].items():
        alignment = f"; against labels ARI {entry['ari']:.3f}, NMI {entry['nmi']:.3f}" if "ari" in entry else ""
        print(f"{source}: {entry['clustered']}/{entry['rows']} rows in {entry['sizes']}{alignment}")
    if report["rows_without_features"]:
        print(f"{report['rows_without_features']} rows had no usable feature vector and stay UNK")
    return 0


def report(args: argparse.Namespace) -> int:
    """Fairness audit of verl validation dumps or a predictions file: JSON, Markdown and PNG plots."""
    from pathlib import Path

    from verl_fair.metrics import report as audit

    columns = audit.Columns(
        label=args.label_column,
        prediction=args.prediction_column,
        groups=_pairs(args.group_column, "--group-column"),
        data_source=args.data_source_column,
        step=args.step_column,
        synonyms=_pairs(args.synonym, "--synonym"),
    )
    output = Path(args.output)
    try:
        if args.compare:
            before, after = (audit.load([Path(p)], columns) for p in args.compare)
            delta = audit.compare(before, after, n_boot=args.bootstrap or 200, min_group_size=args.min_group_size)
            output.mkdir(parents=True, exist_ok=True)
            (output / "delta.json").write_text(json.dumps(delta, indent=2, default=float))
            (output / "delta.md").write_text(audit.compare_markdown(delta))
            print(f"wrote {output / 'delta.json'} and {output / 'delta.md'}")
            return 0
        if not args.inputs:
            raise ValueError("give the predictions (a dump folder or files), or --compare BEFORE AFTER")
        frame = audit.load([Path(p) for p in args.inputs], columns)
        result = audit.evaluate(
            frame, min_group_size=args.min_group_size, n_boot=args.bootstrap or None, worst_k=args.worst_k
        )
        written = audit.write(result, output)
    except (ValueError, OSError) as error:
        print(f"verl-fair report: {error}", file=sys.stderr)
        return 2
    gaps = result["gaps"]
    print(
        f"{result['n']} predictions: equal opportunity difference {gaps['equal_opportunity_difference']:.3f}, "
        f"predictive parity difference {gaps['predictive_parity_difference']:.3f}, PP {gaps['PP']:.2f}, "
        f"EOD {gaps['EOD']:.2f}, F1_ES {gaps['F1_ES']:.3f}"
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _report_parser(commands) -> None:
    parser = commands.add_parser("report", help=report.__doc__)
    parser.add_argument("inputs", nargs="*", help="verl validation_data_dir folders or .jsonl/.csv/.parquet files")
    parser.add_argument("--output", required=True, help="folder for report.json, report.md and the plots")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="a fairness delta report instead")
    parser.add_argument("--label-column", default="gts")
    parser.add_argument("--prediction-column", default="pred")
    parser.add_argument(
        "--group-column", action="append", help="ATTRIBUTE=COLUMN (repeatable; default: every group_<attribute> column)"
    )
    parser.add_argument("--data-source-column", default="data_source")
    parser.add_argument("--step-column", default="step")
    parser.add_argument("--bootstrap", type=int, default=0, help="resamples for 95 %% intervals (0: none)")
    parser.add_argument("--min-group-size", type=int, default=30, help="smaller groups are left out, with a warning")
    parser.add_argument("--worst-k", type=int, default=2, help="k of the worst-k group accuracy")
    parser.add_argument(
        "--synonym",
        action="append",
        help="ALIAS=NAME, as given to the reward's synonyms (the reward's defaults always apply)",
    )


def config_dir() -> int:
    """Print the folder of the shipped YAML configurations (for Hydra's --config-path)."""
    print(configs_folder())
    return 0


def cpu_overrides() -> int:
    """Print the Hydra overrides that run verl on the host (with VERL_PLATFORM=cpu), one per line."""
    from verl_fair.cpu import HYDRA_OVERRIDES

    print("\n".join(HYDRA_OVERRIDES))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verl-fair", description="Fairness-aware RL for verl.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("doctor", help=doctor.__doc__)
    check.add_argument("--config-path", default=None, help="folder of the run's config (default: the shipped one)")
    check.add_argument("--config-name", default="fair_grpo_trainer", help="ppo_trainer for verl's own config")
    check.add_argument("overrides", nargs="*", help="Hydra overrides, as given to verl.trainer.main_ppo")
    _prepare_parser(commands)
    _report_parser(commands)
    found = commands.add_parser("discover", help=discover.__doc__)
    found.add_argument("input", help="a verl parquet file with a feature column")
    found.add_argument("--output", required=True, help="the parquet to write (with extra_info.fair_group)")
    found.add_argument("--feature-column", required=True, help="column holding one vector per row")
    found.add_argument("--k", type=int, default=None, help="clusters per data source (default: elbow rule)")
    found.add_argument("--k-max", type=int, default=8, help="largest k the elbow rule may choose")
    found.add_argument("--seed", type=int, default=0)
    found.add_argument("--prefix", default="cluster", help="group names are <prefix><id>")
    found.add_argument("--data-source-key", default="data_source")
    found.add_argument(
        "--group-attributes",
        nargs="+",
        default=["sex", "age"],
        help="labels to measure the clusters against (ARI, NMI) when rows have them",
    )
    found.add_argument("--overwrite", action="store_true", help="replace existing extra_info.fair_group values")
    commands.add_parser("config-dir", help=config_dir.__doc__)
    commands.add_parser("cpu-overrides", help=cpu_overrides.__doc__)
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor(args.config_path, args.config_name, args.overrides)
    if args.command == "prepare":
        return prepare(args)
    if args.command == "discover":
        return discover(args)
    if args.command == "report":
        return report(args)
    if args.command == "cpu-overrides":
        return cpu_overrides()
    return config_dir()


if __name__ == "__main__":
    sys.exit(main())
