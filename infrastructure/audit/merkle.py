"""Which events each city has, committed to by one hash: the checkpoint's cities root.

    city head  = the chain of the city's event hashes in version order:
                 h_0 = 32 zero bytes, h_v = SHA-256(h_{v-1} || event_hash of version v)
    leaf       = city id (16 bytes) || events (8 bytes, big-endian) || city head (32 bytes)
    cities root = the RFC 9162 Merkle tree hash over every city's leaf, sorted by
                 city id: SHA-256(0x00 || leaf) for a leaf, SHA-256(0x01 || left || right)
                 for a node, split at the largest power of two below the count.

A receipt carries a city's events, and the inclusion proof (RFC 9162, 2.1.3) of
its leaf: whoever re-hashes the events gets the head, the leaf, and, along the
proof, the root the operator signed. An event left out changes the count or
the head, so the root does not come out.

Pure: no SQL, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from uuid import UUID

from dateline.infrastructure.audit.chain import GENESIS

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162: the hash of an empty list


def city_head(event_hashes: Iterable[bytes], previous: bytes = GENESIS) -> bytes:
    for h in event_hashes:
        previous = hashlib.sha256(previous + h).digest()
    return previous


def leaf(city: UUID | bytes, events: int, head: bytes) -> bytes:
    city_bytes = city.bytes if isinstance(city, UUID) else city
    return city_bytes + events.to_bytes(8, "big") + head


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first: pairing left to right, an odd last node
    moving up unchanged, which is RFC 9162's split at the largest power of two."""
    levels = [list(leaf_hashes)]
    sha256 = hashlib.sha256
    while len(levels[-1]) > 1:
        level = levels[-1]
        paired = [sha256(NODE_PREFIX + level[i] + level[i + 1]).digest()
                  for i in range(0, len(level) - 1, 2)]  # fmt: skip
        if len(level) % 2:
            paired.append(level[-1])
        levels.append(paired)
    return levels


class Tree:
    """The tree over some leaf hashes, kept to hand out inclusion proofs."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.size = len(leaf_hashes)
        self.levels = _levels(leaf_hashes)
        self.root = self.levels[-1][0] if self.size else EMPTY_ROOT

    def path(self, index: int) -> list[bytes]:
        """The audit path of leaf `index` (RFC 9162 PATH(m, D[n])), nearest sibling first."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} of {self.size}")
        path: list[bytes] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 MTH over leaf hashes (each already SHA-256(0x00 || leaf))."""
    return Tree(leaf_hashes).root


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    return Tree(leaf_hashes).path(index)


def root_from_proof(leaf_hash_: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root that leaf `index` of `size` leads to along `path` (RFC 9162 2.1.3.2).

    Raises ValueError when the path has the wrong length for that index and size."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of {size} leaves")
    fn, sn = index, size - 1
    r = leaf_hash_
    for p in path:
        if sn == 0:
            raise ValueError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the proof is shorter than the tree is deep")
    return r
