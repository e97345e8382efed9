"""Partition keys, who should own them, and names made safe as KV keys.

A partition of the by-server copy is ``s.<p>``, one of the by-metric copy ``m.<p>``; the
same string keys a lease, a checkpoint pointer and a row of the status page.

Who *should* own a key is rendezvous (highest random weight) hashing over the live nodes:
each (node, key) pair gets a weight from BLAKE2b, and the key goes to the node of highest
weight. Every process computes the same answer from the same node list, and when a node
joins or leaves only the keys it wins or held move. Whether a node *does* own a key is the
lease's business (``leases.py``), never this module's.

KV keys allow only ``[-/_=.a-zA-Z0-9]`` and may not start or end with ``.``, so a server or
metric name is stored as its UTF-8 bytes in unpadded base64url (``encode_name``), which
uses none of ``.`` and reverses exactly (``decode_name``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Literal

Copy = Literal["server", "metric"]

_PREFIX: dict[str, Copy] = {"s": "server", "m": "metric"}
_LETTER: dict[Copy, str] = {"server": "s", "metric": "m"}


def partition_key(copy: Copy, partition: int) -> str:
    """``"s.<p>"`` for the by-server copy's partition ``p``, ``"m.<p>"`` for the by-metric's."""
    if copy not in _LETTER:
        msg = f"copy must be 'server' or 'metric', not {copy!r}"
        raise ValueError(msg)
    if partition < 0:
        msg = f"partition must be >= 0, got {partition}"
        raise ValueError(msg)
    return f"{_LETTER[copy]}.{int(partition)}"


def copy_of(key: str) -> tuple[Copy, int]:
    """The copy and partition a key names: ``copy_of("m.3") == ("metric", 3)``."""
    letter, dot, number = key.partition(".")
    if not dot or letter not in _PREFIX or not number.isdigit() or not number.isascii():
        msg = f"{key!r} is not a partition key (s.<p> or m.<p>)"
        raise ValueError(msg)
    return _PREFIX[letter], int(number)


def weight(key: str, node: str) -> int:
    """The rendezvous weight of ``node`` for ``key``: the same in every process."""
    # A separator that neither name can contain keeps ("ab", "c") apart from ("a", "bc").
    digest = hashlib.blake2b(f"{node}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_of(key: str, nodes: Sequence[str]) -> str | None:
    """The node that should own ``key`` among ``nodes``; ``None`` if there are none."""
    if not nodes:
        return None
    # The name breaks a (vanishingly rare) tie, so the answer never depends on list order.
    return max(nodes, key=lambda node: (weight(key, node), node))


def _ranked(key: str, nodes: list[str]) -> list[str]:
    """``nodes`` from the highest rendezvous weight for ``key`` down."""
    return sorted(nodes, key=lambda node: (weight(key, node), node), reverse=True)


def assignment(keys: Sequence[str], nodes: Sequence[str]) -> dict[str, str]:
    """Every key's owner among ``nodes``; empty when there are no nodes.

    Rendezvous hashing with bounded loads: each key goes to the node of highest weight
    that holds fewer than its share (``keys // nodes``, one more for the first nodes to
    reach it while ``keys % nodes`` such places remain), the keys taken in a fixed order
    (their own highest weight, then name). Plain rendezvous spreads 32 keys over 3 nodes as unevenly
    as 14 / 13 / 5, and a node's memory follows its share; the bound keeps the shares within
    one of each other, for a few more keys moved when a node joins or leaves.
    """
    if not nodes:
        return {}
    unique = sorted(set(nodes))
    low, extra = divmod(len(keys), len(unique))  # ``extra`` nodes may hold one key more
    ranked = {key: _ranked(key, unique) for key in keys}
    load = dict.fromkeys(unique, 0)
    out: dict[str, str] = {}
    for key in sorted(keys, key=lambda k: (weight(k, ranked[k][0]), k), reverse=True):
        owner = next(n for n in ranked[key] if load[n] < low or (load[n] == low and extra > 0))
        if load[owner] == low:
            extra -= 1
        load[owner] += 1
        out[key] = owner
    return {key: out[key] for key in keys}


def encode_name(name: str) -> str:
    """``name`` as a KV-key-safe token: its UTF-8 bytes in unpadded base64url."""
    if not name:
        msg = "an empty name has no KV key"
        raise ValueError(msg)
    return base64.urlsafe_b64encode(name.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_name(token: str) -> str:
    """The name ``encode_name`` made ``token`` from."""
    padded = token + "=" * (-len(token) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
