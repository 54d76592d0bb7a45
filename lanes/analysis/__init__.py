"""Metric analysis, pure: readings in, a verdict and the next analysis status out."""
