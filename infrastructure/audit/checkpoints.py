"""Signed checkpoints: the log's size and head hash, signed with the operator's Ed25519 key.

A checkpoint file is JSON:

    {"format": "dateline-checkpoint/2", "size": 91, "head": "<hex>",
     "created_at": "2026-11-26T02:00:00.000000Z", "cities": 32, "cities_root": "<hex>",
     "public_key": "<hex>", "signature": "<hex>"}

The signature covers the RFC 8785 canonical JSON of format, size, head,
created_at, cities and cities_root: the Merkle root over every city's event
count and city head at that size (infrastructure/audit/merkle.py), which lets
a receipt prove that none of a city's events is left out. Checkpoints of
format 1 (signed before the root existed: format, size, head, created_at)
still check. Whoever holds the public key (printed by `dateline audit keygen`)
can check one without the database.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT_1 = "dateline-checkpoint/1"
FORMAT = "dateline-checkpoint/2"


class CheckpointError(ValueError):
    """A key or checkpoint cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    size: int
    head: str  # hex SHA-256
    created_at: str  # ISO 8601, UTC
    public_key: str  # hex, raw 32 bytes
    signature: str  # hex, 64 bytes
    format: str = FORMAT_1
    cities: int | None = None  # format 2: the leaves under cities_root
    cities_root: str | None = None  # format 2: hex, RFC 9162 Merkle tree hash

    def as_dict(self) -> dict[str, Any]:
        """The file's fields; a format-1 checkpoint has no cities fields."""
        data = asdict(self)
        if self.format == FORMAT_1:
            del data["cities"], data["cities_root"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signed_bytes(
    size: int, head: str, created_at: str, cities: int | None = None, root: str | None = None
) -> bytes:
    """What is signed: format 1 without a cities root, format 2 with one."""
    if root is None:
        return rfc8785.dumps(
            {"format": FORMAT_1, "size": size, "head": head, "created_at": created_at}
        )
    return rfc8785.dumps({"format": FORMAT, "size": size, "head": head, "created_at": created_at,
                          "cities": cities, "cities_root": root})  # fmt: skip


def public_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def generate_key(path: Path) -> str:
    """Write a new private key (PKCS#8 PEM, mode 0600) to `path`; return its public key."""
    if path.exists():
        raise CheckpointError(f"{path} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return public_hex(key)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise CheckpointError(f"DATELINE_AUDIT_KEY_FILE: cannot read {path}: {error}") from None
    except ValueError:
        raise CheckpointError(f"DATELINE_AUDIT_KEY_FILE: {path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"DATELINE_AUDIT_KEY_FILE: {path} is not an Ed25519 key")
    return key


def read_public_key(path: Path) -> str:
    """A public key file: the hex `keygen` printed (or a PEM public key)."""
    try:
        text = path.read_text().strip()
    except OSError as error:
        raise CheckpointError(f"--public-key: cannot read {path}: {error}") from None
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise CheckpointError(f"--public-key: {path} is not an Ed25519 key")
        return public_hex(key)
    try:
        if len(bytes.fromhex(text)) == 32:
            return text.lower()
    except ValueError:
        pass
    raise CheckpointError(f"--public-key: {path} holds neither 64 hex digits nor a PEM key")


def sign(
    key: Ed25519PrivateKey, size: int, head: str, moment: datetime, cities: int, root: str
) -> Checkpoint:
    created_at = instant(moment)
    signature = key.sign(signed_bytes(size, head, created_at, cities, root)).hex()
    return Checkpoint(size, head, created_at, public_hex(key), signature, FORMAT, cities, root)


def parse(data: Any, where: str) -> Checkpoint:
    """A checkpoint from decoded JSON; names the field that is wrong."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: not a checkpoint (expected a JSON object)")
    kind_of = data.get("format")
    if kind_of not in (FORMAT, FORMAT_1):
        raise CheckpointError(f"{where}: format is {kind_of!r}, expected {FORMAT!r}")
    fields: dict[str, Any] = {"format": kind_of}
    names: list[tuple[str, type]] = [
        ("size", int),
        ("head", str),
        ("created_at", str),
        ("public_key", str),
        ("signature", str),
    ]
    if kind_of == FORMAT:
        names += [("cities", int), ("cities_root", str)]
    for name, kind in names:
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(f"{where}: field {name!r} is missing or not a {kind.__name__}")
        fields[name] = value
    return Checkpoint(**fields)


def read(path: Path) -> Checkpoint:
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from None
    except ValueError as error:
        raise CheckpointError(f"{path}: not JSON ({error})") from None
    return parse(data, str(path))


def check(checkpoint: Checkpoint, public_key: str | None = None) -> None:
    """Raise CheckpointError unless the signature holds (under `public_key` if given)."""
    if public_key is not None and public_key.lower() != checkpoint.public_key.lower():
        raise CheckpointError(
            f"the checkpoint was signed by key {checkpoint.public_key[:16]}..., "
            f"not by the expected {public_key[:16]}..."
        )
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(checkpoint.public_key))
        key.verify(
            bytes.fromhex(checkpoint.signature),
            signed_bytes(
                checkpoint.size,
                checkpoint.head,
                checkpoint.created_at,
                checkpoint.cities,
                checkpoint.cities_root if checkpoint.format == FORMAT else None,
            ),
        )
    except (ValueError, InvalidSignature):
        what = "size, head and created_at"
        if checkpoint.format == FORMAT:
            what = "size, head, created_at and cities root"
        raise CheckpointError(
            f"the checkpoint's signature does not match its {what} "
            f"(size {checkpoint.size}, created {checkpoint.created_at})"
        ) from None
