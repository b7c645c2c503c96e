"""One normaliser for what the reward, ``prepare``, ``report`` and the estimator all read: diagnosis labels and
demographic values."""
