# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Running per-key statistics over a statistics window (docs/method.md §3).

For every key (a domain, or a (domain, group) pair) the state holds three float64 numbers:
C, the question visits; S, the sum of rollout rewards; M, the number of rollouts. Then N = C and
mu = S / M. A step adds its own (C, S, M) per key, so the cost of a step depends on the keys it
touches, never on how many steps came before.

History policies: ``all`` accumulates from step 0; ``window`` keeps the last K steps in a ring
buffer; ``ema`` decays every key by beta before adding the step.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

import numpy as np

from verl_fair.algorithm.state import StateError, expect, expect_array
from verl_fair.settings import HistoryConfig

Key = tuple[str, ...]
MAX_COUNT = 2.0**53  # a float64 count beyond it no longer grows by one
MAX_REWARD = float(np.finfo(np.float32).max)  # verl's rewards are float32


class RunningStats:
    """Counts C, reward sums S and rollout counts M per key (a tuple of names), under a history policy."""

    def __init__(self, history: HistoryConfig) -> None:
        self.history = history
        self._index: dict[Key, int] = {}
        self._keys: list[Key] = []
        self._sums = np.zeros((0, 3), dtype=np.float64)  # columns C, S, M
        self._window: deque[tuple[np.ndarray, np.ndarray]] = deque()

    def ids(self, keys: Sequence[Key]) -> np.ndarray:
        """Integer ids of ``keys``, adding unseen keys with zero sums."""
        out = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            idx = self._index.get(key)
            if idx is None:
                idx = self._index[key] = len(self._keys)
                self._keys.append(key)
            out[i] = idx
        if len(self._keys) > len(self._sums):
            grown = np.zeros((len(self._keys), 3), dtype=np.float64)
            grown[: len(self._sums)] = self._sums
            self._sums = grown
        return out

    def update(self, ids: np.ndarray, reward_sums: np.ndarray, rollout_counts: np.ndarray) -> None:
        """Add one step: one question visit per entry, with its reward sum and rollout count."""
        step = np.zeros_like(self._sums)
        np.add.at(step, ids, np.stack([np.ones(len(ids)), reward_sums, rollout_counts], axis=1))
        touched = np.unique(ids)
        if self.history.mode == "ema":
            self._sums *= self.history.ema
        elif self.history.mode == "window":
            self._window.append((touched, step[touched]))
            if len(self._window) > self.history.window:
                old_ids, old_rows = self._window.popleft()
                self._sums[old_ids] -= old_rows
                np.maximum(self._sums, 0.0, out=self._sums)  # rounding in S must not go negative
        self._sums[touched] += step[touched]

    def count(self, ids: np.ndarray) -> np.ndarray:
        """N = C, question visits in the window."""
        return self._sums[ids, 0]

    def mean(self, ids: np.ndarray) -> np.ndarray:
        """mu = S / M, the mean rollout reward in the window (NaN for a key with no rollouts)."""
        sums = self._sums[ids]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sums[:, 2] > 0, sums[:, 1] / np.where(sums[:, 2] > 0, sums[:, 2], 1.0), np.nan)

    def state_dict(self) -> dict:
        return {
            "keys": [list(k) for k in self._keys],
            "sums": self._sums.copy(),
            "window_ids": [ids.copy() for ids, _ in self._window],
            "window_rows": [rows.copy() for _, rows in self._window],
        }

    def load_state_dict(self, state: dict, path: str = "stats") -> None:
        keys = expect(state, "keys", list, path)
        if not all(isinstance(k, list) and k and all(isinstance(p, str) for p in k) for k in keys):
            raise StateError(f"{path}.keys must be lists of names")
        keys = [tuple(k) for k in keys]
        if len(set(keys)) != len(keys):
            twice = next(key for key, count in Counter(keys).items() if count > 1)
            raise StateError(f"{path}.keys lists {list(twice)} twice")
        sums = expect_array(state, "sums", path, ndim=2, length=len(keys), width=3)
        _check_rows(sums, keys, f"{path}.sums")
        window_ids = expect(state, "window_ids", list, path)
        window_rows = expect(state, "window_rows", list, path)
        if len(window_ids) != len(window_rows) or (self.history.mode != "window" and window_ids):
            raise StateError(f"{path}: window_ids and window_rows do not match this statistics window")
        window = deque()
        for step, (ids, rows) in enumerate(zip(window_ids, window_rows, strict=True)):
            entry = {"ids": ids, "rows": rows}
            ids = expect_array(entry, "ids", f"{path}.window[{step}]", ndim=1, integer=True, non_negative=True)
            rows = expect_array(entry, "rows", f"{path}.window[{step}]", ndim=2, length=len(ids), width=3)
            if ids.size and ids.max() >= len(keys):
                raise StateError(f"{path}.window[{step}].ids refers to key {ids.max()} of {len(keys)}")
            _check_rows(rows, [keys[i] for i in ids], f"{path}.window[{step}].rows")
            window.append((ids, rows))
        self._keys = keys
        self._index = {key: i for i, key in enumerate(self._keys)}
        self._sums = np.array(sums, dtype=np.float64)
        self._window = window


def _check_rows(rows: np.ndarray, keys: Sequence[Key], name: str) -> None:
    """Refuse rows (C, S, M) no run can reach: 0 <= C <= M <= MAX_COUNT and |S| <= max(M, 1) * MAX_REWARD."""
    visits, total, rollouts = rows.T
    problems = {
        "a negative count": np.minimum(visits, rollouts) < 0,
        f"more rollouts than a count reaches ({MAX_COUNT:g})": rollouts > MAX_COUNT,
        "more question visits than rollouts (each visit has at least one)": visits > rollouts,
        "a mean reward beyond any float32 reward": np.abs(total) / np.maximum(rollouts, 1.0) > MAX_REWARD,
    }
    for problem, bad in problems.items():
        if bad.any():
            i = int(bad.argmax())
            raise StateError(
                f"{name}[{i}] (key {list(keys[i])}): {visits[i]:g} visits, reward sum {total[i]:g}, "
                f"{rollouts[i]:g} rollouts: {problem}"
            )
