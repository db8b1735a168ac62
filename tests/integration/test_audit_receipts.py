"""Receipts: a status answer that checks offline, and fails naming what when one
byte is changed (both stores; CLI and HTTP)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dateline.api.cli import main
from dateline.infrastructure.audit import checkpoints, receipts
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
    assert second.endswith("10 events re-hashed and re-folded to the same answer")
    data = json.loads(path.read_text())
    assert data["receipt"]["checkpoint"]["size"] == 89
    assert data["receipt"]["log"]["size"] == 89


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
        assert receipt["checkpoint"] is None  # none signed yet
    for api in open_api(make_settings(store_kind), store_kind):  # no key: no receipts
        api.register("testville")
        response = api.get("/cities/testville/status", params={"receipt": "true"})
        assert response.status_code == 503
        assert "DATELINE_AUDIT_KEY_FILE" in response.json()["detail"]
