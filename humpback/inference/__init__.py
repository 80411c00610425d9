"""Batch inference: engines behind one interface, the rating parser, and the Spark adapter."""
