"""Evaluation: the backward-model gate (gate)."""
