"""Runnable examples: ``python -m jitgrad.examples.seed`` and ``python -m jitgrad.examples.digits``."""
