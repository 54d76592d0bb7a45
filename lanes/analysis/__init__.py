"""Metric analysis, pure: the built-in queries, and readings in, a verdict and status out."""
