"""Receipts: a status answer that checks offline, proves that none of its city's
events is left out, and fails naming what when one event is removed, one byte is
changed or the proof is wrong (both stores; CLI and HTTP)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dateline.api.cli import main
from dateline.infrastructure.audit import checkpoints, receipts
from dateline.infrastructure.audit.store import AuditDatabase
from dateline.infrastructure.settings import Settings
from tests.api.conftest import open_api
from tests.conftest import CliRunner, drop_schema


@pytest.fixture
def receipt_file(
    cli: CliRunner, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """A receipt for Kunduz on 2015-09-28 and the public key; then the store is gone."""
    key = tmp_path / "audit.key"
    (tmp_path / "audit.pub").write_text(checkpoints.generate_key(key) + "\n")
    monkeypatch.setenv("DATELINE_AUDIT_KEY_FILE", str(key))
    assert cli("audit", "checkpoint")[0] == 0
    path = tmp_path / "receipt.json"
    code, out = cli("status", "kunduz", "--as-of", "2015-09-28", "--receipt", str(path))
    assert code == 0, out
    assert out == "Kunduz on 2015-09-28: held by Taliban since 2015-09-28 (event kunduz-3)"
    # Offline: no database behind the check.
    store = settings.store()
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        store.sqlite_path.unlink()
    else:
        drop_schema(store.schema)
    monkeypatch.setenv("DATELINE_DATABASE_URL", "sqlite:///nowhere/at/all.sqlite")
    return path, tmp_path / "audit.pub"


def check(path: Path, *extra: str) -> tuple[int, str]:
    lines: list[str] = []
    code = main(["audit", "check-receipt", str(path), *extra], out=lines.append)
    return code, "\n".join(lines)


def test_a_receipt_checks_offline(receipt_file: tuple[Path, Path]) -> None:
    path, public = receipt_file
    code, out = check(path, "--public-key", str(public))
    assert code == 0
    first, second = out.splitlines()
    assert first.startswith(
        "kunduz on 2015-09-28: held by Taliban since 2015-09-28 (event kunduz-3), as known at "
    )
    assert "10 events re-hashed and proven complete against the cities root of the " in second
    assert second.endswith("(89 entries), 10 re-folded to the same answer")
    receipt = json.loads(path.read_text())["receipt"]
    assert receipt["checkpoint"]["size"] == receipt["log"]["size"] == 89
    assert receipt["checkpoint"]["format"] == "dateline-checkpoint/2"
    assert receipt["checkpoint"]["cities"] == 32
    assert receipt["city"]["events"] == len(receipt["events"]) == 10
    assert len(receipt["proof"]) == 5  # 32 leaves: a path of log2(32)


def drop_last_event(data: dict[str, Any]) -> None:
    data["receipt"]["events"].pop()


def drop_last_event_and_refit_leaf(data: dict[str, Any]) -> None:
    """A cleverer forgery: the leaf made to match the nine events left."""
    from uuid import UUID

    from dateline.infrastructure.audit import merkle

    receipt = data["receipt"]
    receipt["events"].pop()
    receipt["city"]["events"] = 9
    head = merkle.city_head(bytes.fromhex(e["event_hash"]) for e in receipt["events"])
    receipt["city"]["head"] = head.hex()
    assert UUID(receipt["city_id"])  # the leaf's id stays the city's


def flip_state_byte(data: dict[str, Any]) -> None:
    event = data["receipt"]["events"][2]
    state = bytearray(base64.b64decode(event["state"]))
    state[state.index(b"Taliban") + 6] ^= 0x0C  # n -> b
    event["state"] = base64.b64encode(bytes(state)).decode()


def set_in(*keys: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for k in keys[:-2]:
            target = target[k]
        value = target[keys[-2]]
        target[keys[-2]] = keys[-1](value)

    return change


def other_hex(value: str) -> str:
    return ("1" if value[0] != "1" else "2") + value[1:]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (flip_state_byte, "kunduz-3: its stored bytes hash to "),
        (set_in("receipt", "events", 2, "event_hash", other_hex), "kunduz-3: its stored bytes"),
        (
            set_in("receipt", "answer", "controller", lambda _: "Talibam"),
            "answer: controller is 'Talibam' but the events fold to 'Taliban'",
        ),
        (
            set_in("controller", lambda _: "Talibam"),
            "answer: controller is 'Talibam' beside the receipt, 'Taliban' in it",
        ),
        (set_in("receipt", "log", "head", other_hex), "the signature does not match: "),
        (set_in("receipt", "signature", other_hex), "the signature does not match: "),
        (
            set_in("receipt", "events", lambda events: events[:2] + events[3:]),
            "kunduz-4: expected version 3 here (a missing or extra event)",
        ),
        (
            drop_last_event,
            "the receipt holds 9 events of kunduz but its leaf under the checkpoint counts 10: "
            "kunduz-10 is missing",
        ),
        (drop_last_event_and_refit_leaf, "proof: kunduz's leaf (9 events, head "),
        (set_in("receipt", "proof", 0, other_hex), "proof: kunduz's leaf (10 events, head "),
        (
            set_in("receipt", "proof", lambda path: path[:-1]),
            "proof: not an inclusion proof of leaf ",
        ),
        (
            set_in("receipt", "city", "leaf_index", lambda i: i ^ 1),
            "proof: kunduz's leaf (10 events, head ",
        ),
        (set_in("receipt", "city", "head", other_hex), "kunduz's 10 events chain to city head "),
        (
            set_in("receipt", "checkpoint", "cities_root", other_hex),
            "checkpoint: the checkpoint's signature does not match its size, head, created_at "
            "and cities root",
        ),
        (
            set_in("receipt", "answer", "version", lambda _: 9),
            "answer: version is 9 but 10 of kunduz's events were recorded by known_at",
        ),
    ],
)
def test_a_changed_receipt_fails_naming_what(
    receipt_file: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    change: Callable[[dict[str, Any]], None],
    named: str,
) -> None:
    path, _ = receipt_file
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    assert check(path)[0] == 1
    err = capsys.readouterr().err
    assert "the receipt does not check: " + named in err


def test_a_receipt_by_another_key_is_refused(receipt_file: tuple[Path, Path]) -> None:
    path, public = receipt_file
    public.write_text(checkpoints.generate_key(public.with_name("other.key")) + "\n")
    assert check(path, "--public-key", str(public))[0] == 1


def test_a_receipt_needs_a_checkpoint_covering_its_known_at(
    cli: CliRunner,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An answer about now, after a write the latest checkpoint has not seen: the receipt
    comes with a new checkpoint that covers it; an answer about a moment before the
    latest checkpoint uses that one. A receipt re-signed to claim coverage it lacks fails."""
    key = tmp_path / "audit.key"
    public = checkpoints.generate_key(key)
    monkeypatch.setenv("DATELINE_AUDIT_KEY_FILE", str(key))
    assert cli("audit", "checkpoint")[0] == 0
    early = json.loads(cli("status", "kunduz", "--json")[1])["known_at"]
    code, out = cli("report", "kunduz", "Contested", "--on", "2016-01-02", "--actor", "Taliban",
                    "--source", "Reuters")  # fmt: skip
    assert code == 0, out
    now, before = tmp_path / "now.json", tmp_path / "before.json"
    assert cli("status", "kunduz", "--receipt", str(now))[0] == 0
    assert cli("status", "kunduz", "--known-at", early, "--receipt", str(before))[0] == 0
    for path, size, events, version in ((now, 90, 11, 11), (before, 90, 11, 10)):
        data = json.loads(path.read_text())
        assert data["version"] == version
        assert data["receipt"]["checkpoint"]["size"] == size  # one checkpoint signed, for `now`
        assert data["receipt"]["city"]["events"] == events
        assert receipts.check(data["receipt"], public)["version"] == version
    db = AuditDatabase(settings.store())
    with db.connect() as conn:  # the one from the test, and the one the first receipt signed
        assert [c.size for c in db.checkpoints(conn)] == [89, 90]
    # A receipt about now whose checkpoint is older than its known_at, re-signed by the
    # operator's key: the checks pass up to the coverage, which fails.
    data = json.loads(now.read_text())["receipt"]
    data["answer"]["known_at"] = "2099-01-01T00:00:00Z"
    body = {k: v for k, v in data.items() if k != "signature"}
    signing_key = checkpoints.load_private_key(key)
    import rfc8785

    data["signature"] = signing_key.sign(rfc8785.dumps(body)).hex()
    with pytest.raises(receipts.ReceiptError, match="does not cover known_at 2099-01-01T00:00:00Z"):
        receipts.check(data, public)


def test_receipts_over_http(
    make_settings: Callable[..., Settings], store_kind: str, tmp_path: Path
) -> None:
    from dateline.seeds.loader import load_seeds

    key = tmp_path / "audit.key"
    public = checkpoints.generate_key(key)
    for api in open_api(make_settings(store_kind, audit_key_file=key), store_kind):
        load_seeds(api.dateline)
        plain = api.get("/cities/kunduz/status", params={"as_of": "2015-09-28"})
        assert "receipt" not in plain.json()
        response = api.get(
            "/cities/kunduz/status", params={"as_of": "2015-09-28", "receipt": "true"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"10"'
        body = response.json()
        receipt = body.pop("receipt")
        assert receipts.check(receipt, public) == body
        # None had been signed: the receipt came with the first, which covers it.
        assert receipt["checkpoint"]["size"] == 89
        assert api.get("/audit/checkpoint").json() == receipt["checkpoint"]
    for api in open_api(make_settings(store_kind), store_kind):  # no key: no receipts
        api.register("testville")
        response = api.get("/cities/testville/status", params={"receipt": "true"})
        assert response.status_code == 503
        assert "DATELINE_AUDIT_KEY_FILE" in response.json()["detail"]


def test_city_heads_ahead_of_the_log_are_named_not_signed(
    cli: CliRunner,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The derived city heads folded beyond the log (a log restored without them, or a
    hand edit): no checkpoint is signed over them, and a receipt that would need one
    is refused with the reason, never a wrong proof."""
    from tests.audit_support import as_superuser

    key = tmp_path / "audit.key"
    checkpoints.generate_key(key)
    monkeypatch.setenv("DATELINE_AUDIT_KEY_FILE", str(key))
    as_superuser(
        settings,
        "INSERT INTO {t}dateline_audit_cities (city_id, events, head, position) "
        "VALUES (%s, 1, %s, 9999)",
        params=("0" * 31 + "1", bytes(32)),
    )
    assert cli("audit", "checkpoint")[0] == 1
    assert "the log has no entry 9999, which its city heads were folded to" in (
        capsys.readouterr().err
    )
    assert cli("status", "kunduz", "--receipt", str(tmp_path / "r.json"))[0] == 1
    err = capsys.readouterr().err
    assert "no checkpoint can be signed: the log has no entry 9999" in err
    assert not (tmp_path / "r.json").exists()
