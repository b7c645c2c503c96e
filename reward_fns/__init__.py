"""Reward functions for verl (installed as verl_fair.reward_fns)."""
