"""jitgrad.utils.data against torch.utils.data: batches, lengths, collation, errors.

Batch values, types and lengths must equal PyTorch's; a shuffled epoch must be
a permutation that ``jg.manual_seed`` (or a ``generator``) repeats, though not
PyTorch's order. The PyTorch comparisons skip where torch is not installed.
"""
import collections
import re
import warnings

import numpy as np
import pytest

import jitgrad as jg
import jitgrad.random as jg_random
from jitgrad.utils import data

try:
    import torch
    import torch.utils.data as tdata
except ImportError:
    torch = tdata = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

Point = collections.namedtuple("Point", "x y")


@pytest.fixture(autouse=True)
def restore_rng():
    """Tests seed the global generator; the next test gets the state it had."""
    state = jg_random._rng.bit_generator.state
    yield
    jg_random._rng = np.random.Generator(np.random.PCG64())
    jg_random._rng.bit_generator.state = state


def plain(obj):
    """A batch as nested Python values, tensors as (dtype name, nested list): comparable
    across libraries, container types kept."""
    if hasattr(obj, "numpy") and hasattr(obj, "dtype"):
        return (str(obj.dtype).split(".")[-1], obj.tolist())
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return ("namedtuple", type(obj).__name__, [plain(v) for v in obj])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [plain(v) for v in obj])
    return obj


def columns(lib, n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return lib.tensor(x), lib.tensor(np.arange(n))


def loader_batches(lib, mod, n, **kwargs):
    return [plain(b) for b in mod.DataLoader(mod.TensorDataset(*columns(lib, n)), **kwargs)]


# --- datasets ------------------------------------------------------------------------------


def test_tensor_dataset():
    x, y = columns(jg)
    ds = data.TensorDataset(x, y)
    assert len(ds) == 10
    sample = ds[2]
    assert isinstance(sample, tuple) and sample[0].tolist() == [6.0, 7.0, 8.0] and \
        sample[1].item() == 2
    with pytest.raises(AssertionError, match="^Size mismatch between tensors$"):
        data.TensorDataset(x, y[:9])


def test_subset_and_concat():
    ds = data.TensorDataset(*columns(jg))
    sub = data.Subset(ds, [7, 2, 5])
    assert len(sub) == 3 and sub[1][1].item() == 2
    assert [s[1].item() for s in sub.__getitems__([2, 0])] == [5, 7]
    both = ds + sub
    assert isinstance(both, data.ConcatDataset) and len(both) == 13
    assert both.cumulative_sizes == [10, 13]
    assert [both[i][1].item() for i in (0, 9, 10, 12, -1, -13)] == [0, 9, 7, 5, 5, 0]
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset"):
        both[-14]
    with pytest.raises(AssertionError, match="datasets should not be an empty iterable"):
        data.ConcatDataset([])
    with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
        data.ConcatDataset([ds, Stream(3)])


def test_dataset_base_class():
    with pytest.raises(NotImplementedError,
                       match="Subclasses of Dataset should implement __getitem__."):
        data.Dataset()[0]

    class Squares(data.Dataset[int]):  # subscripted as in typed PyTorch scripts
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return i * i

    assert [b.tolist() for b in data.DataLoader(Squares(), batch_size=3)] == [[0, 1, 4], [9]]


@pytest.mark.parametrize("lengths", [[8, 3], [0.7, 0.3], [0.34, 0.33, 0.33], [0.5, 0.5]])
def test_random_split_lengths_and_cover(lengths):
    ds = data.TensorDataset(*columns(jg, 11))
    parts = data.random_split(ds, lengths, generator=jg.Generator().manual_seed(1))
    seen = sorted(i for part in parts for i in part.indices)
    assert seen == list(range(11))
    again = data.random_split(ds, lengths, generator=jg.Generator().manual_seed(1))
    assert [p.indices for p in parts] == [p.indices for p in again]
    if tdata is not None:
        theirs = tdata.random_split(tdata.TensorDataset(*columns(torch, 11)), lengths)
        assert [len(p) for p in parts] == [len(p) for p in theirs]
    else:
        assert sum(len(p) for p in parts) == 11


def test_random_split_uses_the_global_generator_and_checks_lengths():
    ds = data.TensorDataset(*columns(jg, 20))
    jg.manual_seed(5)
    first = [p.indices for p in data.random_split(ds, [10, 10])]
    jg.manual_seed(5)
    assert [p.indices for p in data.random_split(ds, [10, 10])] == first
    assert first != [list(range(10)), list(range(10, 20))]
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of "
                                         "the input dataset!"):
        data.random_split(ds, [10, 9])
    with pytest.raises(ValueError, match="Fraction at index 1 is not between 0 and 1"):
        data.random_split(ds, [0.5, 1.5, -1.0])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        data.random_split(data.TensorDataset(*columns(jg, 1)), [0.5, 0.5])


# --- loading -------------------------------------------------------------------------------


GRID = [(10, 1, False), (10, 3, False), (10, 3, True), (10, 5, True), (10, 10, False),
        (10, 12, False), (10, 12, True), (7, 4, True)]


@pytest.mark.parametrize("n, batch_size, drop_last", GRID)
def test_sequential_batches_and_len(n, batch_size, drop_last):
    ours = loader_batches(jg, data, n, batch_size=batch_size, drop_last=drop_last)
    loader = data.DataLoader(data.TensorDataset(*columns(jg, n)), batch_size=batch_size,
                             drop_last=drop_last)
    assert len(loader) == len(ours) == (n // batch_size if drop_last else -(-n // batch_size))
    rows = [i for batch in ours for i in batch[1][1][1]]
    assert rows == list(range(len(rows)))
    assert all(batch[0] == "list" and batch[1][0][0] == "float32" for batch in ours)
    if tdata is not None:
        assert ours == loader_batches(torch, tdata, n, batch_size=batch_size,
                                      drop_last=drop_last)
        tloader = tdata.DataLoader(tdata.TensorDataset(*columns(torch, n)),
                                   batch_size=batch_size, drop_last=drop_last)
        assert len(loader) == len(tloader)


@pytest.mark.parametrize("n, batch_size, drop_last", GRID)
def test_shuffle_is_a_permutation_repeated_by_manual_seed(n, batch_size, drop_last):
    def epochs(seed):
        jg.manual_seed(seed)
        loader = data.DataLoader(data.TensorDataset(*columns(jg, n)), batch_size=batch_size,
                                 shuffle=True, drop_last=drop_last)
        return [[i for b in loader for i in b[1].tolist()] for _ in range(3)]

    first = epochs(0)
    kept = (n // batch_size) * batch_size if drop_last else n
    for order in first:
        assert len(order) == kept and len(set(order)) == kept
        assert set(order) <= set(range(n))
    if not drop_last:
        assert all(sorted(order) == list(range(n)) for order in first)
    assert epochs(0) == first
    if kept >= 7:
        assert first[0] != first[1]          # each epoch draws a new order
        assert epochs(1)[0] != first[0]      # ... from the seed


def test_shuffle_with_a_generator_ignores_the_global_seed():
    ds = data.TensorDataset(*columns(jg, 30))

    def order(global_seed):
        jg.manual_seed(global_seed)
        g = jg.Generator().manual_seed(3)
        return [i for b in data.DataLoader(ds, batch_size=4, shuffle=True, generator=g)
                for i in b[1].tolist()]

    assert order(0) == order(1) != list(range(30))


def test_a_tensor_dataset_batch_is_one_index_op():
    x = jg.randn(12, 3, requires_grad=True)
    y = jg.arange(12)
    train, _ = data.random_split(data.TensorDataset(x, y), [8, 4])
    for ds in (data.TensorDataset(x, y), train):
        for xb, yb in data.DataLoader(ds, batch_size=5, shuffle=True):
            assert type(xb.grad_fn).__name__ == "IndexBackward0"  # not StackBackward0
            rows = yb.tolist()
            np.testing.assert_array_equal(xb.detach().numpy(), x.detach().numpy()[rows])

    class Doubled(data.TensorDataset):  # its own __getitem__: batched sample by sample
        def __getitem__(self, i):
            xi, yi = super().__getitem__(i)
            return xi * 2, yi

    xb, yb = next(iter(data.DataLoader(Doubled(x, y), batch_size=4)))
    assert type(xb.grad_fn).__name__ == "StackBackward0"
    np.testing.assert_allclose(xb.detach().numpy(), 2 * x.detach().numpy()[:4])


def test_batches_train_a_model():
    jg.manual_seed(0)
    x = jg.randn(64, 3)
    y = x @ jg.tensor([[1.0], [-2.0], [0.5]])
    model = jg.nn.Linear(3, 1)
    opt = jg.optim.SGD(model.parameters(), lr=0.1)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=16, shuffle=True)
    for _ in range(30):
        for xb, yb in loader:
            opt.zero_grad()
            loss = ((model(xb) - yb) ** 2).mean()
            loss.backward()
            opt.step()
    np.testing.assert_allclose(model.weight.detach().numpy(), [[1.0, -2.0, 0.5]], atol=1e-3)


def test_batch_size_none_converts_samples():
    loader = data.DataLoader(data.TensorDataset(*columns(jg, 3)), batch_size=None)
    assert len(loader) == 3
    sample = next(iter(loader))
    assert isinstance(sample, list) and sample[1].item() == 0
    arrays = data.DataLoader([np.ones(2), np.zeros(2)], batch_size=None)
    assert [plain(a) for a in arrays] == [("float64", [1.0, 1.0]), ("float64", [0.0, 0.0])]


def test_samplers_and_custom_collate():
    ds = data.TensorDataset(*columns(jg))
    loader = data.DataLoader(ds, batch_size=3, sampler=[9, 8, 1, 0])
    assert [b[1].tolist() for b in loader] == [[9, 8, 1], [0]]
    loader = data.DataLoader(ds, batch_sampler=[[4, 1], [2, 3, 7]])
    assert [b[1].tolist() for b in loader] == [[4, 1], [2, 3, 7]] and len(loader) == 2
    loader = data.DataLoader(ds, batch_size=4, collate_fn=lambda samples: len(samples))
    assert list(loader) == [4, 4, 2]
    sampler = data.BatchSampler(data.SequentialSampler(range(10)), 3, drop_last=False)
    assert list(sampler) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]] and len(sampler) == 4
    sampler = data.BatchSampler(range(10), 3, drop_last=True)
    assert list(sampler) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]] and len(sampler) == 3
    jg.manual_seed(0)
    drawn = list(data.RandomSampler(range(5), replacement=True, num_samples=40))
    assert len(drawn) == 40 and set(drawn) <= set(range(5)) and len(set(drawn)) > 1
    longer = list(data.RandomSampler(range(5), num_samples=12))
    assert len(longer) == 12 and sorted(longer[:10]) == sorted(list(range(5)) * 2)
    picked = list(data.SubsetRandomSampler([3, 5, 7]))
    assert sorted(picked) == [3, 5, 7]


def test_num_workers_load_in_process():
    ds = data.TensorDataset(*columns(jg))
    jg.manual_seed(2)
    serial = [b[1].tolist() for b in data.DataLoader(ds, batch_size=3, shuffle=True)]
    jg.manual_seed(2)
    loader = data.DataLoader(ds, batch_size=3, shuffle=True, num_workers=2,
                             persistent_workers=True, prefetch_factor=4)
    assert [b[1].tolist() for b in loader] == serial
    assert data.get_worker_info() is None


class Stream(data.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


@pytest.mark.parametrize("batch_size, drop_last", [(3, False), (3, True), (None, False)])
def test_iterable_dataset(batch_size, drop_last):
    loader = data.DataLoader(Stream(7), batch_size=batch_size, drop_last=drop_last)
    ours = [plain(b) for b in loader]
    expected_len = 7 if batch_size is None else (2 if drop_last else 3)
    assert len(loader) == len(ours) == expected_len
    if tdata is not None:
        class TStream(tdata.IterableDataset):
            def __iter__(self):
                return iter(range(7))

            def __len__(self):
                return 7

        tloader = tdata.DataLoader(TStream(), batch_size=batch_size, drop_last=drop_last)
        assert ours == [plain(b) for b in tloader] and len(loader) == len(tloader)
    chained = Stream(2) + Stream(3)
    assert isinstance(chained, data.ChainDataset) and list(chained) == [0, 1, 0, 1, 2]
    assert len(chained) == 5


# --- collation -----------------------------------------------------------------------------


def samples(lib):
    return [{"image": np.full((2, 2), i, np.float32), "label": i, "weight": 0.5 * i,
             "flag": i % 2 == 0, "name": f"s{i}", "pair": (lib.tensor([i, -i]), [i, 2 * i]),
             "point": Point(np.float64(i), np.int64(i))}
            for i in range(3)]


def test_default_collate_matches_torch():
    ours = plain(data.default_collate(samples(jg)))
    assert ours["image"][0] == "float32" and ours["label"] == ("int64", [0, 1, 2])
    assert ours["weight"] == ("float64", [0.0, 0.5, 1.0])
    assert ours["flag"] == ("bool", [True, False, True])
    assert ours["name"] == ("list", ["s0", "s1", "s2"])
    assert ours["pair"][0] == "list"  # a tuple's fields come back as a list, as in PyTorch
    assert ours["point"][0] == "namedtuple"
    if tdata is not None:
        assert ours == plain(tdata.default_collate(samples(torch)))
        assert plain(data.default_convert(samples(jg)[1])) == \
            plain(tdata.default_convert(samples(torch)[1]))


def test_default_collate_errors():
    with pytest.raises(RuntimeError,
                       match="each element in list of batch should be of equal size"):
        data.default_collate([[1, 2], [3]])
    message = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
               "lists; found <class 'object'>")
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        data.default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        data.default_collate([np.array(["a"]), np.array(["b"])])
    if tdata is not None:
        with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
            tdata.default_collate([object(), object()])


# --- argument errors -----------------------------------------------------------------------


def bad_loader_calls(lib, mod):
    ds = mod.TensorDataset(*columns(lib, 4))
    return [
        lambda: mod.DataLoader(ds, num_workers=-1),
        lambda: mod.DataLoader(ds, timeout=-1),
        lambda: mod.DataLoader(ds, prefetch_factor=2),
        lambda: mod.DataLoader(ds, persistent_workers=True),
        lambda: mod.DataLoader(ds, shuffle=True, sampler=[0, 1]),
        lambda: mod.DataLoader(ds, batch_sampler=[[0]], batch_size=2),
        lambda: mod.DataLoader(ds, batch_sampler=[[0]], drop_last=True),
        lambda: mod.DataLoader(ds, batch_size=None, drop_last=True),
        lambda: mod.DataLoader(ds, batch_size=0),
        lambda: mod.DataLoader(ds, batch_size=2.0),
        lambda: mod.DataLoader(ds, batch_size=2, drop_last=1),
        lambda: setattr(mod.DataLoader(ds), "batch_size", 3),
        lambda: mod.RandomSampler(ds, replacement=1),
        lambda: mod.RandomSampler(ds, num_samples=0),
        lambda: mod.DataLoader(ds, multiprocessing_context="spawn"),
    ]


MESSAGES = [
    (ValueError, "num_workers option should be non-negative; use num_workers=0 to disable "
                 "multiprocessing."),
    (ValueError, "timeout option should be non-negative"),
    (ValueError, "prefetch_factor option could only be specified in multiprocessing.let "
                 "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to "
                 "None."),
    (ValueError, "persistent_workers option needs num_workers > 0"),
    (ValueError, "sampler option is mutually exclusive with shuffle"),
    (ValueError, "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                 "sampler, and drop_last"),
    (ValueError, "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                 "sampler, and drop_last"),
    (ValueError, "batch_size=None option disables auto-batching and is mutually exclusive "
                 "with drop_last"),
    (ValueError, "batch_size should be a positive integer value, but got batch_size=0"),
    (ValueError, "batch_size should be a positive integer value, but got batch_size=2.0"),
    (ValueError, "drop_last should be a boolean value, but got drop_last=1"),
    (ValueError, "batch_size attribute should not be set after DataLoader is initialized"),
    (TypeError, "replacement should be a boolean value, but got replacement=1"),
    (ValueError, "num_samples should be a positive integer value, but got num_samples=0"),
    (ValueError, "multiprocessing_context can only be used with multi-process loading "
                 "(num_workers > 0), but got num_workers=0"),
]


@pytest.mark.parametrize("case", range(len(MESSAGES)))
def test_bad_arguments_raise_torch_messages(case):
    kind, message = MESSAGES[case]
    with pytest.raises(kind, match=f"^{re.escape(message)}$"):
        bad_loader_calls(jg, data)[case]()
    if tdata is not None:
        with pytest.raises(kind, match=f"^{re.escape(message)}$"):
            bad_loader_calls(torch, tdata)[case]()


def test_iterable_dataset_rejects_sampling_options():
    for kwargs, name in [(dict(shuffle=True), "shuffle option, but got shuffle=True"),
                         (dict(sampler=[0]), "sampler option, but got sampler=[0]"),
                         (dict(batch_sampler=[[0]]),
                          "batch_sampler option, but got batch_sampler=[[0]]")]:
        with pytest.raises(ValueError, match=re.escape(
                f"DataLoader with IterableDataset: expected unspecified {name}")):
            data.DataLoader(Stream(3), **kwargs)


def test_pin_memory_warns_as_without_an_accelerator():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(data.DataLoader([1, 2], pin_memory=True))
    assert any("'pin_memory' argument is set as true but no accelerator is found"
               in str(w.message) for w in caught)
