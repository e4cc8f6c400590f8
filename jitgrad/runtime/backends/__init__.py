"""Backends: per device, the eager launchers (one kernel per op, over numpy arrays)."""
