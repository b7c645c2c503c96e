"""Dataset preparation for verl."""
