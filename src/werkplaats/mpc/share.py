"""The two ends of a job outside the parties: the data owner shares, the result receiver reconstructs.

`share_dataset` runs at a data owner (a datastation, or the local coordinator playing
each owner): it encodes one validated table (`werkplaats.mpc.encode`) and
secret-shares every array, so that party *i* gets share *i* of each. `reconstruct`
runs at the result receiver (the hub, or the local coordinator): it combines the three
parties' output shares into the program's outputs.

Security model: the owner's table and the encoded arrays are secret and never leave
this module other than as shares; one party's shares reveal nothing. The program's
outputs are disclosure-controlled by the program itself (suppressed cells are zeroed
before anything leaves the parties), so `reconstruct` reveals only the cells that pass
and, for the others, the fact that they were suppressed. The slots (which arrays, their
shapes) and the row counts are public.

A bucketed job (`werkplaats.mpc.buckets`) is shared bucket by bucket (`share_buckets`): each
owner splits its table by the keyed hash of the person key, pads each bucket to the public
padded size and shares it; only one bucket's shares exist at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from ..compile.analyze import Analysis
from ..compile.layout import Slot, layout
from ..exceptions import MPCError
from ..plan import nodes as n
from ..result import Revealed
from . import wire
from .process import WORLD
from .runtime import precision_of, runtime_config


def share_arrays(arrays: list[np.ndarray], precision: str = "standard") -> list[list[list[bytes]]]:
    """Secret-share arrays in one sharing context: per party, the packed share of each array.

    precision: the plan's (`runtime.precision_of`): the ring the shares live in.
    """
    import spu
    from spu import libspu

    io = spu.Io(WORLD, runtime_config(precision))  # NB: one owner, one sharing context
    per_party: list[list[list[bytes]]] = [[] for _ in range(WORLD)]
    for arr in arrays:
        parts = io.make_shares(np.ascontiguousarray(arr), libspu.Visibility.VIS_SECRET)
        for rank in range(WORLD):
            per_party[rank].append(wire.pack_share(parts[rank]))
    return per_party


def share_dataset(a: Analysis, dataset: str, df: pd.DataFrame) -> list[list[list[bytes]]]:
    """Encode and secret-share one owner's validated table: per party, the packed share of each slot."""
    from .encode import encode

    slots = layout(a, {dataset: len(df)})
    return share_arrays(encode(a, dataset, df, slots), precision_of(a.plan))


def share_tables(a: Analysis, tables: dict[str, pd.DataFrame]) -> tuple[list[Slot], list[list[list[bytes]]]]:
    """Share every table as its own owner would; return the slots and, per party, the packed shares."""
    slots = layout(a, {d: len(df) for d, df in tables.items()})
    per_party: list[list[list[bytes]]] = [[] for _ in range(WORLD)]
    for dataset in dict.fromkeys(s.dataset for s in slots):
        for r, blobs in enumerate(share_dataset(a, dataset, tables[dataset])):
            per_party[r].extend(blobs)
    return slots, per_party


def bucket_rows(tables: dict[str, pd.DataFrame], count: int) -> dict[str, int]:
    """Return each table's public padded bucket size for `count` buckets."""
    from .buckets import padded_size

    return {d: padded_size(len(df), count) for d, df in tables.items()}


def share_buckets(a: Analysis, tables: dict[str, pd.DataFrame], secret: bytes,
                  count: int) -> Iterator[list[list[list[bytes]]]]:  # fmt: skip
    """Yield, bucket by bucket, per party the packed shares of every slot of every dataset (layout order).

    Every table is split by `buckets.assignments` first (so that an over-full bucket is refused
    before anything is shared); each bucket is then encoded, padded and shared as its owner would.
    """
    from .buckets import assignments
    from .encode import encode

    slots = layout(a, bucket_rows(tables, count), bucketed=True)
    datasets = list(dict.fromkeys(s.dataset for s in slots))
    which = {d: assignments(a, d, tables[d], secret, count) for d in datasets}
    precision = precision_of(a.plan)
    for b in range(count):
        per_party: list[list[list[bytes]]] = [[] for _ in range(WORLD)]
        for d in datasets:
            part = tables[d][which[d] == b].reset_index(drop=True)
            for r, blobs in enumerate(share_arrays(encode(a, d, part, slots), precision)):
                per_party[r].extend(blobs)
        yield per_party


def reconstruct_arrays(outs: list[list[Any]], precision: str = "standard") -> list[np.ndarray]:
    """Combine the parties' shares of each output (outs[rank][output]) into its values."""
    import spu

    io = spu.Io(WORLD, runtime_config(precision))
    return [np.asarray(io.reconstruct([outs[r][i] for r in range(WORLD)])) for i in range(len(outs[0]))]


def reconstruct(a: Analysis, outs: list[list[Any]]) -> Revealed:
    """Combine the three parties' output shares into the revealed (disclosure-controlled) cells."""
    from ..compile.spu import output_kinds

    values = reconstruct_arrays(outs, precision_of(a.plan))
    kinds = output_kinds(a)
    if len(values) != len(kinds):
        msg = f"MPC program returned {len(values)} outputs, expected {len(kinds)}"
        raise MPCError(msg)
    root = a.plan.root
    if isinstance(root, n.Summary):
        from ..compile.models import summary_module

        return summary_module(root).revealed(a, values[1:], int(values[0]))
    assert isinstance(root, n.Aggregate)
    withheld = int(values[0])  # NB: the whole result (rule 5, rule 9); the program zeroed every cell unless REVEALED
    cell_ok = values[1].astype(bool)
    revealed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for j, (name, _) in enumerate(root.aggs):
        revealed[name] = (values[2 + 2 * j].astype(np.int64), values[3 + 2 * j])  # NB: the codes of result.py
    return Revealed(cell_ok, revealed, withheld)
