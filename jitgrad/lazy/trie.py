"""The trie of recorded op sequences: each node is what the recorder knows about the op
that follows one prefix, and holds the Programs of the segments that end there."""


class TrieNode:
    """A node of the trie of recorded op sequences: what is known about the op that
    follows a given prefix with a given key (its outputs, its autograd treatment) and,
    for the sequence ending here, its Programs and cached training steps."""

    __slots__ = ("children", "last", "metas", "mode", "fdtype", "programs", "train",
                 "deferred")

    def __init__(self, fdtype=None, deferred=False):
        self.children = {}
        self.last = None  # (op, grad, akey, refs, child, refs when all are places) of the
        #                   child last taken with the caller's attributes key
        self.deferred = deferred  # some op on the path to here defers its grad_fn
        self.metas = None    # [(shape, dtype, view)] per output
        self.mode = 0        # 0: outputs finished by ops.finish (several outputs, a view
        #                      without grad, grad_fn made at once); 1: no grad; 2: grad_fn
        #                      deferred; 4: a view op's grad_fn deferred; -1: the
        #                      interpreter does not cover it (runs eagerly)
        self.fdtype = fdtype  # the float dtype of the segment's Program (one per Program)
        self.programs = None  # outputs that must be contiguous -> Program
        self.train = None    # the root's position -> CachedStep

MAX_TRIE = 200_000    # trie nodes kept before the trie (and its Programs) is dropped

_ROOT = TrieNode()

_trie_size = [0]


def restart_if_full():
    """Start the trie (and its Programs) afresh once ever-new sequences made it too large."""
    global _ROOT
    if _trie_size[0] > MAX_TRIE:
        _ROOT, _trie_size[0] = TrieNode(), 0
