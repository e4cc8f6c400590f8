"""Process-wide runtime state: the execution mode, the runtime's counters and the epochs
that cached steps and jitgrad.jit replays check (list cells, so holders share them)."""
import os

_STATE = {"lazy": os.environ.get("JITGRAD_MODE", "lazy").lower() != "eager"}

_stats = {"programs": 0, "instructions": 0, "lowerings": 0, "cache_hits": 0,
          "eager_fallbacks": 0, "replays": 0}
_module_epoch = [0]  # bumped when any nn.Module attribute changes (jit replays check it)
_leaf_epoch = [0]    # bumped when a tensor gains a hook or a gradient home (an optimizer's):
#                      what a cached training step checked about its inputs holds until then
