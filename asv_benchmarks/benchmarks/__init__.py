"""jitgrad's airspeed-velocity benchmarks (see ../README.md)."""
