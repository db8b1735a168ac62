"""The cities tree: RFC 9162's Merkle tree hash and inclusion proofs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from dateline.infrastructure.audit import merkle


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.1, as written: split at the largest power of two below n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 100])
def test_the_root_is_rfc_9162s(n: int) -> None:
    assert merkle.root(leaves(n)) == mth(leaves(n))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 32, 33])
def test_every_leaf_proves_its_way_to_the_root(n: int) -> None:
    hashes = leaves(n)
    tree = merkle.Tree(hashes)
    for i in range(n):
        path = tree.path(i)
        assert merkle.root_from_proof(hashes[i], i, n, path) == mth(hashes)
        if path:  # one wrong sibling, or the leaf at another index: another root
            wrong = [bytes(32), *path[1:]]
            assert merkle.root_from_proof(hashes[i], i, n, wrong) != mth(hashes)
            other = (i + 1) % n
            if other != i:
                assert merkle.root_from_proof(hashes[other], i, n, path) != mth(hashes)


def test_a_path_of_the_wrong_length_is_refused() -> None:
    hashes = leaves(10)
    path = merkle.Tree(hashes).path(3)
    with pytest.raises(ValueError, match="shorter"):
        merkle.root_from_proof(hashes[3], 3, 10, path[:-1])
    with pytest.raises(ValueError, match="longer"):
        merkle.root_from_proof(hashes[3], 3, 10, [*path, bytes(32)])
    with pytest.raises(ValueError, match="outside"):
        merkle.root_from_proof(hashes[3], 10, 10, path)


def test_leaves_and_city_heads_are_framed() -> None:
    city = bytes(range(16))
    head = merkle.city_head([b"a" * 32, b"b" * 32])
    assert (
        head == hashlib.sha256(hashlib.sha256(bytes(32) + b"a" * 32).digest() + b"b" * 32).digest()
    )
    data = merkle.leaf(city, 2, head)
    assert data == city + (2).to_bytes(8, "big") + head
    assert merkle.leaf_hash(data) == hashlib.sha256(b"\x00" + data).digest()
    assert merkle.leaf_hash(data) != hashlib.sha256(data).digest()
