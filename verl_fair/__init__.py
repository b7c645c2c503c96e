"""Fairness-aware reinforcement learning for verl."""

__version__ = "0.1.0"
