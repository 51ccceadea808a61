"""Evaluation phase: metrics, the paired comparison, sanity checks, explanations, report."""
