"""Glue between verl and the estimator; the only package that knows verl's internals."""
