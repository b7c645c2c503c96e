"""Process-local FairGRPO context: the estimator state and the uid -> (domain, group) table.

verl calls the estimator in its controller process (the TaskRunner actor) once per training step.
The state that must survive across steps lives here, reachable through :func:`get_state`; a metadata
hook running in the same process (the v1 replay-buffer sampler) publishes each prompt's domain and
group with :func:`publish`, and the estimator takes them with :func:`take`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

from verl_fair.algorithm.core import FairGRPO
from verl_fair.config import FairGRPOConfig

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_state: FairGRPO | None = None
_published: dict[str, tuple[str, str]] = {}


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


def reset_state() -> None:
    """Forget the estimator state and every published uid (a fresh start in this process)."""
    global _state
    with _lock:
        _state = None
        _published.clear()


def publish(entries: Mapping[str, tuple[str, str]]) -> None:
    """Record uid -> (domain, group) for the prompts the next estimator call will see.

    The table holds one batch: publishing replaces whatever an earlier batch left (entries the
    estimator never took, as in a run whose estimator is not fair_grpo), so it cannot grow.
    """
    with _lock:
        _published.clear()
        _published.update({str(uid): (str(d), str(g)) for uid, (d, g) in entries.items()})


def take(uids: Iterable[str]) -> list[tuple[str, str] | None]:
    """Remove and return the published (domain, group) of each uid; None where none was published."""
    with _lock:
        return [_published.pop(str(uid), None) for uid in uids]


def has_published() -> bool:
    with _lock:
        return bool(_published)
