"""``jitgrad.utils.data``: datasets, samplers and ``DataLoader``, as ``torch.utils.data``.

The classes, defaults, batch types and error messages are PyTorch's. Two
differences:

- Shuffling draws from jitgrad's generator (``jg.manual_seed`` makes an
  epoch's order repeat), so the order differs from PyTorch's under the same
  seed.
- ``num_workers > 0`` is accepted but batches are loaded in the main process
  (there are no worker processes; ``get_worker_info()`` returns None). Batches
  come out as they would with ``num_workers=0``.

A batch of a ``TensorDataset`` (or of a ``Subset`` of one, as ``random_split``
makes) under the default collate is one indexing op per tensor,
``tensor[indices]``, instead of a stack of one slice per row.
"""
import bisect
import collections.abc
import copy
import itertools
import math
import re
import typing
import warnings

import numpy as np

from ..random import Generator, randint, randperm
from ..tensor import Tensor, as_tensor, tensor
from .. import dtypes as _dtypes
from ..ops import stack

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset",
           "Subset", "random_split", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "BatchSampler", "DataLoader", "default_collate",
           "default_convert", "get_worker_info"]


# --- datasets ------------------------------------------------------------------------------

_T = typing.TypeVar("_T")


class Dataset(typing.Generic[_T]):  # Generic: scripts annotate Dataset[...] as in PyTorch
    """A map from keys (usually ``0 .. len - 1``) to samples: subclasses define
    ``__getitem__`` and usually ``__len__``."""

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses define ``__iter__``."""

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the rows of ``tensors`` (indexed along their first dimension together).

    Args:
        *tensors (Tensor): tensors with the same size of the first dimension.
    """

    def __init__(self, *tensors):
        if any(tensors[0].size(0) != t.size(0) for t in tensors):
            raise AssertionError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].size(0)


class ConcatDataset(Dataset):
    """The samples of ``datasets``, one after another.

    Args:
        datasets (sequence): the (map-style) datasets to concatenate.
    """

    @staticmethod
    def cumsum(sequence):
        return list(itertools.accumulate(len(e) for e in sequence))

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if len(self.datasets) == 0:
            raise AssertionError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        sample_idx = idx - self.cumulative_sizes[dataset_idx - 1] if dataset_idx else idx
        return self.datasets[dataset_idx][sample_idx]


class ChainDataset(IterableDataset):
    """The samples of iterable ``datasets``, one stream after another.

    Args:
        datasets (iterable of IterableDataset): the streams to chain.
    """

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self):
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            total += len(d)
        return total


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``.

    Args:
        dataset (Dataset): the whole dataset.
        indices (sequence): the indices in ``dataset`` this subset holds.
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices
        if (type(self).__getitem__ is not Subset.__getitem__
                and type(self).__getitems__ is Subset.__getitems__):
            raise NotImplementedError(
                f"{type(self).__name__} overrides __getitem__ but not __getitems__. "
                "When subclassing Subset and overriding __getitem__, you must also override "
                "__getitems__ to ensure DataLoader works correctly with your custom logic. "
                "A simple implementation:\n\n"
                "def __getitems__(self, indices):\n"
                "    return [self.__getitem__(idx) for idx in indices]")

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[idx] for idx in indices])
        return [self.dataset[self.indices[idx]] for idx in indices]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths.

    Args:
        dataset (Dataset): the dataset to split.
        lengths (sequence): the subsets' lengths, or fractions summing to 1 (each subset
            then gets ``floor(frac * len(dataset))`` items, the remainder handed out one
            by one from the first subset on).
        generator (Generator): draws the permutation (default: jitgrad's global generator).
    """
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        subset_lengths = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            subset_lengths.append(math.floor(len(dataset) * frac))
        remainder = len(dataset) - sum(subset_lengths)
        for i in range(remainder):
            subset_lengths[i % len(subset_lengths)] += 1
        lengths = subset_lengths
        for i, length in enumerate(lengths):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. "
                              f"This might result in an empty dataset.", stacklevel=2)
    if sum(lengths) != len(dataset):
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    indices = randperm(sum(lengths), generator=generator).tolist()
    return [Subset(dataset, indices[offset - length:offset])
            for offset, length in zip(itertools.accumulate(lengths), lengths)]


# --- samplers ------------------------------------------------------------------------------


class Sampler(typing.Generic[_T]):
    """An iterable of dataset keys (or of lists of them, for a batch sampler)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``, every epoch.

    Args:
        data_source (Sized): the dataset to sample from.
    """

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


def _epoch_generator(generator):
    """``generator``, or a generator seeded from the global one: each epoch draws one
    seed, so ``manual_seed`` fixes every later epoch's order."""
    if generator is not None:
        return generator
    return Generator().manual_seed(randint(2 ** 62, (1,)).item())


class RandomSampler(Sampler):
    """The dataset's keys in random order (a fresh permutation each epoch), or
    ``num_samples`` keys drawn with replacement.

    Args:
        data_source (Sized): the dataset to sample from.
        replacement (bool): draw with replacement (default False).
        num_samples (int): how many keys to draw (default ``len(data_source)``).
        generator (Generator): the source of randomness (default: a generator seeded
            from jitgrad's global one each epoch).
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.replacement, bool):
            raise TypeError("replacement should be a boolean value, but got "
                            f"replacement={self.replacement}")
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError("num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        generator = _epoch_generator(self.generator)
        if self.replacement:
            yield from randint(n, (self.num_samples,), generator=generator).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from randperm(n, generator=generator).tolist()
        yield from randperm(n, generator=generator).tolist()[:self.num_samples % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in random order, a fresh permutation each epoch.

    Args:
        indices (sequence): the keys to sample.
        generator (Generator): the source of randomness (default: jitgrad's global one).
    """

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in randperm(len(self.indices), generator=self.generator).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class BatchSampler(Sampler):
    """Lists of ``batch_size`` keys from ``sampler`` (the last one shorter unless
    ``drop_last``).

    Args:
        sampler (Sampler or Iterable): the keys to batch.
        batch_size (int): keys per batch.
        drop_last (bool): drop the last batch if it is shorter than ``batch_size``.
    """

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError("batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        keys = iter(self.sampler)
        if self.drop_last:
            for batch in zip(*[keys] * self.batch_size):
                yield [*batch]
            return
        batch = [*itertools.islice(keys, self.batch_size)]
        while batch:
            yield batch
            batch = [*itertools.islice(keys, self.batch_size)]

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


class _InfiniteConstantSampler(Sampler):
    """An iterable dataset's keys: ``None`` forever (the dataset decides when it ends)."""

    def __iter__(self):
        while True:
            yield None


# --- collation -----------------------------------------------------------------------------

_NOT_NUMERIC = re.compile(r"[SaUO]")  # numpy string and object dtypes
_COLLATE_ERROR = ("default_collate: batch must contain tensors, numpy arrays, numbers, "
                  "dicts or lists; found {}")


def _is_numpy(obj):
    kind = type(obj)
    return kind.__module__ == "numpy" and kind.__name__ not in ("str_", "string_")


def default_convert(data):
    """Turn the numpy arrays in one sample into tensors, inside mappings, namedtuples and
    sequences too (tuples become lists); anything else is returned as it is. The
    ``DataLoader``'s collate function when it does not batch (``batch_size=None``).

    Args:
        data: one sample.
    """
    kind = type(data)
    if isinstance(data, Tensor):
        return data
    if _is_numpy(data):
        if isinstance(data, np.ndarray) and _NOT_NUMERIC.search(data.dtype.str):
            return data
        return as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return _rebuild_mapping(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # a namedtuple
        return kind(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data


def _rebuild_mapping(like, items):
    """``items`` in a mapping of ``like``'s type where that type allows it, else a dict."""
    try:
        if isinstance(like, collections.abc.MutableMapping):
            clone = copy.copy(like)
            clone.update(items)
            return clone
        return type(like)(items)
    except TypeError:
        return items


def _rebuild_sequence(like, items):
    """``items`` in a sequence of ``like``'s type where that type allows it, else a list."""
    try:
        if isinstance(like, collections.abc.MutableSequence):
            clone = copy.copy(like)
            for i, item in enumerate(items):
                clone[i] = item
            return clone
        return type(like)(items)
    except TypeError:
        return items


def default_collate(batch):
    """Stack a list of samples into a batch, as PyTorch's ``default_collate``.

    Tensors are stacked along a new first dimension; numpy arrays become tensors and are
    stacked; Python floats become a float64 tensor, ints (and bools) an int64 (bool)
    tensor; strings and bytes stay a list; mappings, namedtuples and sequences are
    collated field by field (a tuple's fields come back as a list).

    Args:
        batch (list): the samples.
    """
    elem = batch[0]
    kind = type(elem)
    if isinstance(elem, Tensor):
        return stack(batch, 0)
    if isinstance(elem, np.ndarray):
        if _NOT_NUMERIC.search(elem.dtype.str):
            raise TypeError(_COLLATE_ERROR.format(elem.dtype))
        return as_tensor(np.stack(batch))  # one array, then one tensor
    if isinstance(elem, (np.bool_, np.number, np.object_)):
        return as_tensor(np.asarray(batch))  # keeps the scalars' dtype, as PyTorch does
    if isinstance(elem, float):
        return tensor(batch, dtype=_dtypes.float64)
    if isinstance(elem, int):
        return tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _rebuild_mapping(elem, {key: default_collate([d[key] for d in batch])
                                       for key in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return kind(*(default_collate(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(samples)) for samples in zip(*batch)]
        return fields if isinstance(elem, tuple) else _rebuild_sequence(elem, fields)
    raise TypeError(_COLLATE_ERROR.format(kind))


def get_worker_info():
    """Information about the data-loading worker this code runs in: always None, since
    jitgrad's ``DataLoader`` loads every batch in the main process."""
    return None


def _tensor_rows(dataset, indices):
    """The batch ``default_collate`` would make of ``dataset``'s samples at ``indices``,
    as one indexing op per tensor, when ``dataset`` is a ``TensorDataset`` (possibly
    inside ``Subset``s) whose item access is the stock one; else None."""
    while isinstance(dataset, Subset):
        if (type(dataset).__getitem__ is not Subset.__getitem__
                or type(dataset).__getitems__ is not Subset.__getitems__):
            return None
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    if (not isinstance(dataset, TensorDataset)
            or type(dataset).__getitem__ is not TensorDataset.__getitem__
            or callable(getattr(dataset, "__getitems__", None))):
        return None
    rows = tensor(indices, dtype=_dtypes.int64)
    return [t[rows] for t in dataset.tensors]


# --- the loader ----------------------------------------------------------------------------


class DataLoader:
    """Batches of a dataset, in sampler order, as ``torch.utils.data.DataLoader``.

    Args:
        dataset (Dataset): a map-style or iterable dataset.
        batch_size (int, optional): samples per batch (default 1); None turns batching
            off (each sample is converted by ``default_convert``).
        shuffle (bool, optional): a new random order each epoch (default False).
        sampler (Sampler or Iterable, optional): the keys to load, instead of
            ``shuffle``'s choice.
        batch_sampler (Sampler or Iterable, optional): lists of keys, one per batch
            (excludes ``batch_size``, ``shuffle``, ``sampler`` and ``drop_last``).
        num_workers (int, optional): accepted for compatibility; batches are always
            loaded in the main process.
        collate_fn (Callable, optional): turns a list of samples into a batch (default
            ``default_collate``).
        pin_memory (bool, optional): no effect (there is no accelerator; warns, as PyTorch).
        drop_last (bool, optional): drop the last batch if it is incomplete.
        timeout (numeric, optional): must be non-negative (no workers wait).
        worker_init_fn (Callable, optional): kept; not called, as there are no workers.
        multiprocessing_context: kept (needs ``num_workers > 0``, as in PyTorch).
        generator (Generator, optional): the ``RandomSampler``'s source of randomness.
        prefetch_factor (int, optional): kept (needs ``num_workers > 0``).
        persistent_workers (bool, optional): kept (needs ``num_workers > 0``).
        pin_memory_device (str, optional): kept.
        in_order (bool, optional): kept (batches always come in order).
    """

    _initialized = False

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; "
                             "use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        elif num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if multiprocessing_context is not None and num_workers == 0:
            raise ValueError("multiprocessing_context can only be used with multi-process "
                             f"loading (num_workers > 0), but got num_workers={num_workers}")
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle not in {False, None}:
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle "
                                 f"option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler "
                                 f"option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            if self._iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self._initialized = True

    def __setattr__(self, attr, val):
        if self._initialized and attr in ("batch_size", "batch_sampler", "sampler", "drop_last",
                                          "dataset", "persistent_workers"):
            raise ValueError(f"{attr} attribute should not be set after "
                             f"{type(self).__name__} is initialized")
        super().__setattr__(attr, val)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self):
        if self.pin_memory:
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, "
                          "then device pinned memory won't be used.", stacklevel=2)
        return _DataLoaderIter(self)

    def __len__(self):
        if self._iterable:
            length = len(self.dataset)
            if self.batch_size is not None:
                length = (length // self.batch_size if self.drop_last
                          else math.ceil(length / self.batch_size))
            return length
        return len(self._index_sampler)


class _DataLoaderIter:
    """One epoch of a ``DataLoader``: keys from its sampler, samples from its dataset."""

    def __init__(self, loader):
        self._loader = loader
        self._keys = iter(loader._index_sampler)
        self._samples = iter(loader.dataset) if loader._iterable else None

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader._index_sampler)

    def __next__(self):
        loader = self._loader
        key = next(self._keys)
        if self._samples is not None:
            return self._next_stream(loader, key)
        dataset, collate_fn = loader.dataset, loader.collate_fn
        if not loader._auto_collation:
            return collate_fn(dataset[key])
        if collate_fn is default_collate:
            rows = _tensor_rows(dataset, key)
            if rows is not None:
                return rows
        getitems = getattr(dataset, "__getitems__", None)
        return collate_fn(getitems(key) if getitems else [dataset[i] for i in key])

    def _next_stream(self, loader, keys):
        if not loader._auto_collation:
            return loader.collate_fn(next(self._samples))
        batch = list(itertools.islice(self._samples, len(keys)))
        if not batch or (loader.drop_last and len(batch) < len(keys)):
            raise StopIteration
        return loader.collate_fn(batch)
