"""Segment quality: signals (numbers), language id, drop rules (decisions) and the pure parts of dedup."""
