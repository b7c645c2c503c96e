# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Offline group discovery: cluster per-sample feature vectors into ``extra_info["fair_group"]``.

For data without demographic labels, groups can be found before training from features the user
provides (image embeddings, say) in a parquet column. Per data source, k-means (k fixed, or chosen
by the elbow rule up to ``k_max``) assigns each row a group ``<prefix><id>``, which FairGRPO then
uses as the row's explicit group. A data source's vector length is its commonest one; rows without a
usable vector of that length are left without a group (UNK) and counted. An ``extra_info`` stored as
a JSON string keeps that form. When rows also carry demographic labels, the report gives the adjusted Rand index
and normalised mutual information of the clusters against them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verl_fair.groups.labels import UNK, as_mapping, group_key
from verl_fair.groups.latent import modal_length, select_k_elbow


def _vector(value: Any) -> np.ndarray | None:
    try:
        vector = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if vector.size == 0 or not np.all(np.isfinite(vector)):
        return None
    return vector


def cluster(features: np.ndarray, k: int | None, k_max: int, seed: int) -> np.ndarray:
    """Cluster labels of the rows of ``features``: k-means with k given or chosen by the elbow rule."""
    from sklearn.cluster import KMeans

    distinct = len(np.unique(features, axis=0))
    if k is not None:
        return KMeans(n_clusters=min(k, distinct), n_init="auto", random_state=seed).fit(features).labels_
    models = [
        KMeans(n_clusters=j, n_init="auto", random_state=seed).fit(features) for j in range(1, min(k_max, distinct) + 1)
    ]
    return models[select_k_elbow([m.inertia_ for m in models], tol=0.10) - 1].labels_


def discover(
    input_path: Path,
    output_path: Path,
    feature_column: str,
    *,
    k: int | None = None,
    k_max: int = 8,
    seed: int = 0,
    prefix: str = "cluster",
    data_source_key: str = "data_source",
    attributes: Sequence[str] = ("sex", "age"),
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``output_path`` (the input with ``extra_info.fair_group`` set) and return the report."""
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from tqdm import tqdm

    if not input_path.is_file():
        state = "is a folder" if input_path.is_dir() else "does not exist"
        raise ValueError(f"{input_path} {state}; give the parquet file with the feature column (e.g. train.parquet)")
    frame = pd.read_parquet(input_path)
    for column in (feature_column, data_source_key):
        if column not in frame.columns:
            raise ValueError(f"column {column!r} is not in {input_path}; it has {sorted(frame.columns)}")
    if (k is not None and k < 1) or k_max < 1:
        raise ValueError(f"k={k} and k_max={k_max}: both must be at least 1 (--k, --k-max)")
    raw = list(frame["extra_info"]) if "extra_info" in frame.columns else [None] * len(frame)
    as_text = [isinstance(info, (str, bytes)) for info in raw]
    infos = []
    for row, info in enumerate(raw):
        found = as_mapping(info)
        if found is None and info is not None and not (isinstance(info, float) and np.isnan(info)):
            raise ValueError(
                f"{input_path} row {row}: extra_info is {str(info)[:80]!r}, neither a mapping nor a JSON object; "
                "fix the row or drop it"
            )
        infos.append(dict(found or {}))
    already = sum(1 for info in infos if info.get("fair_group") not in (None, ""))
    if already and not overwrite:
        raise ValueError(f"{already} rows already have extra_info.fair_group; pass --overwrite to replace them")
    report: dict[str, Any] = {"data_sources": {}, "rows_without_features": 0}
    for source in tqdm(sorted(frame[data_source_key].astype(str).unique()), desc="clustering", unit="source"):
        rows = np.flatnonzero(frame[data_source_key].astype(str).to_numpy() == source)
        found = [_vector(frame[feature_column].iloc[r]) for r in rows]
        dim = modal_length([v for v in found if v is not None]) if any(v is not None for v in found) else None
        vectors = [v if v is not None and v.size == dim else None for v in found]
        usable = [r for r, v in zip(rows, vectors, strict=True) if v is not None]
        report["rows_without_features"] += len(rows) - len(usable)
        for r in rows:
            infos[r]["fair_group"] = None
        if not usable:
            continue
        labels = cluster(np.stack([v for v in vectors if v is not None]), k, k_max, seed)
        for r, label in zip(usable, labels, strict=True):
            infos[r]["fair_group"] = f"{prefix}{label}"
        entry: dict[str, Any] = {
            "rows": len(rows),
            "clustered": len(usable),
            "sizes": dict(sorted(Counter(f"{prefix}{c}" for c in labels).items())),
        }
        truth = [group_key({k_: v for k_, v in infos[r].items() if k_ != "fair_group"}, attributes) for r in usable]
        known = [i for i, t in enumerate(truth) if t != UNK]
        if len(known) >= 2:
            entry["ari"] = float(adjusted_rand_score([truth[i] for i in known], [labels[i] for i in known]))
            entry["nmi"] = float(normalized_mutual_info_score([truth[i] for i in known], [labels[i] for i in known]))
        report["data_sources"][source] = entry
    frame["extra_info"] = [json.dumps(i) if text else i for i, text in zip(infos, as_text, strict=True)]
    output_path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(output_path, index=False)
    output_path.with_suffix(".discover.json").write_text(json.dumps(report, indent=2))
    return report
