"""CPU demos of verl-fair (``python -m verl_fair.demo``)."""
