# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Process-local FairGRPO context: the estimator state, the last step's report and the metadata channel.

verl calls the estimator in its controller process (the TaskRunner actor) once per training step, as a
plain function with no handle to anything that lives across steps. What must survive lives here:
the :class:`~verl_fair.algorithm.core.FairGRPO` state (:func:`get_state`), the last step's
:class:`~verl_fair.algorithm.core.StepReport` (:func:`last_report`, which the sampler logs), and a
channel through which a metadata hook running in the same process (the v1 replay-buffer sampler)
publishes each prompt's domain, group and gold label for the estimator (:func:`publish`, :func:`take`).
docs/upstream.md proposes the verl changes that would make this module unnecessary.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

from verl_fair.algorithm.core import FairGRPO, StepReport
from verl_fair.config import FairGRPOConfig
from verl_fair.groups.labels import PromptMetadata

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_state: FairGRPO | None = None
_report: StepReport | None = None
_published: dict[str, PromptMetadata] = {}


def get_state(config: FairGRPOConfig | None = None) -> FairGRPO | None:
    """The process's FairGRPO state; with ``config``, create it (or replace one built from other settings).

    Without ``config`` it returns the current state, or None before the first training step. Use
    ``get_state().state_dict()`` / ``load_state_dict()`` to save and restore it.
    """
    global _state
    with _lock:
        if config is not None and (_state is None or _state.config != config):
            if _state is not None:
                logger.warning(
                    "algorithm.fair_grpo settings changed in this process: FairGRPO statistics "
                    "restart from zero (was %s steps).",
                    _state.steps_,
                )
            _state = FairGRPO(config)
        return _state


def record(report: StepReport) -> None:
    """Keep the report of the step just computed (the sampler logs it with the next batch)."""
    global _report
    with _lock:
        _report = report


def last_report() -> StepReport | None:
    with _lock:
        return _report


def reset_state() -> None:
    """Forget the estimator state, the last report and every published uid (a fresh start in this process)."""
    global _state, _report
    with _lock:
        _state = _report = None
        _published.clear()


def publish(entries: Mapping[str, PromptMetadata | tuple]) -> None:
    """Record uid -> (domain, group[, gold label]) for the prompts the next estimator call will see.

    The table holds one batch: publishing replaces whatever an earlier batch left (entries the
    estimator never took, as in a run whose estimator is not fair_grpo), so it cannot grow.
    """
    with _lock:
        _published.clear()
        _published.update({str(uid): PromptMetadata(*entry) for uid, entry in entries.items()})


def take(uids: Iterable[str]) -> list[PromptMetadata | None]:
    """Remove and return the published metadata of each uid; None where none was published."""
    with _lock:
        return [_published.pop(str(uid), None) for uid in uids]


def has_published() -> bool:
    """True while published entries wait for the estimator."""
    with _lock:
        return bool(_published)
