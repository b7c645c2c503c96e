"""Running per-key statistics over a statistics window (method.md 13.3).

For every key (a domain, or a (domain, group) pair) the state holds three float64 numbers:
C, the question visits; S, the sum of rollout rewards; M, the number of rollouts. Then N = C and
mu = S / M. A step adds its own (C, S, M) per key, so the cost of a step depends on the keys it
touches, never on how many steps came before.

History policies: ``all`` accumulates from step 0; ``window`` keeps the last K steps in a ring
buffer; ``ema`` decays every key by beta before adding the step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence

import numpy as np

from verl_fair.config import HistoryConfig

STATE_VERSION = 1


class RunningStats:
    """Counts C, reward sums S and rollout counts M per key, under a history policy."""

    def __init__(self, history: HistoryConfig) -> None:
        self.history = history
        self._index: dict[Hashable, int] = {}
        self._keys: list[Hashable] = []
        self._sums = np.zeros((0, 3), dtype=np.float64)  # columns C, S, M
        self._window: deque[tuple[np.ndarray, np.ndarray]] = deque()

    def ids(self, keys: Sequence[Hashable]) -> np.ndarray:
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
            "version": STATE_VERSION,
            "keys": list(self._keys),
            "sums": self._sums.copy(),
            "window": [(ids.copy(), rows.copy()) for ids, rows in self._window],
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"statistics state version {state.get('version')!r}; this verl-fair reads {STATE_VERSION}")
        self._keys = [tuple(k) if isinstance(k, list) else k for k in state["keys"]]
        self._index = {key: i for i, key in enumerate(self._keys)}
        self._sums = np.array(state["sums"], dtype=np.float64).reshape(-1, 3)
        self._window = deque((np.asarray(i), np.asarray(r)) for i, r in state["window"])
