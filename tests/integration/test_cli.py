"""The `dateline` command line against real stores: output, errors, nothing written."""

from __future__ import annotations

import json

import pytest


def event_count(cli: object) -> int:
    code, out = cli("history", "kunduz", "--json")  # type: ignore[operator]
    assert code == 0
    return len(json.loads(out))


def test_status_reads_as_a_sentence_and_as_json(cli: object) -> None:
    code, out = cli("status", "kunduz", "--as-of", "2015-09-28")  # type: ignore[operator]
    assert code == 0
    assert out == "Kunduz on 2015-09-28: held by Taliban since 2015-09-28 (event kunduz-3)"
    code, out = cli("status", "kunduz", "--as-of", "2021-08-07", "--json")  # type: ignore[operator]
    data = json.loads(out)
    assert (data["status"], data["controller"], data["contested_by"], data["since"]) == (
        "contested", "Afghan government", "Taliban", "2021-06-20",
    )  # fmt: skip


def test_seed_twice_adds_nothing(cli: object) -> None:
    code, out = cli("seed", "--json")  # type: ignore[operator]
    assert code == 0
    assert json.loads(out)["events_written"] == 0


def test_timeline_and_history_tables(cli: object) -> None:
    code, out = cli("timeline", "kunduz")  # type: ignore[operator]
    assert code == 0
    assert out.splitlines()[0].split() == [
        "from", "to", "status", "controller", "contested_by", "event_id",
    ]  # fmt: skip
    assert "2015-09-28  2015-10-01  held       Taliban" in out
    code, out = cli("history", "kunduz")  # type: ignore[operator]
    assert "kunduz-10" in out and "moneycontrol.com" in out


def test_report_then_retract_then_known_at(cli: object) -> None:
    code, out = cli(  # type: ignore[operator]
        "report", "kunduz", "contested", "--on", "2015-09-26", "--actor", "Taliban",
        "--source", "WSJ", "--report-id", "wsj-1", "--json",
    )  # fmt: skip
    assert code == 0
    event = json.loads(out)
    assert (event["id"], event["created"], event["reported_by"][:4]) == ("kunduz-11", True, "cli:")
    code, out = cli("status", "kunduz", "--as-of", "2015-09-27", "--json")  # type: ignore[operator]
    assert json.loads(out)["status"] == "contested"
    code, out = cli(  # type: ignore[operator]
        "report", "kunduz", "Contested", "--on", "2015-09-26", "--actor", "Taliban",
        "--source", "WSJ", "--report-id", "wsj-1",
    )  # fmt: skip
    assert code == 0 and out.startswith("already recorded (nothing written): kunduz-11")
    code, out = cli("retract", "kunduz", "kunduz-11", "--reason", "unconfirmed")  # type: ignore[operator]
    assert code == 0 and "kunduz-12 retracts kunduz-11" in out
    code, out = cli("status", "kunduz", "--as-of", "2015-09-27", "--json")  # type: ignore[operator]
    assert json.loads(out)["status"] == "held"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("status", "kundz"), "no city 'kundz' is registered (did you mean 'kunduz'?)"),
        (("report", "kunduz", "Captured", "--on", "2021-08-09", "--actor", "Taliban",
          "--source", "AP"), "Taliban already controls Kunduz on that date"),
        (("report", "kunduz", "Captured", "--on", "2014-03-01", "--actor", "Taliban",
          "--source", "AP"), "before Kunduz's record begins"),
        (("report", "kunduz", "Contested", "--on", "2016-10-01", "--actor", "  ",
          "--source", "AP"), "actor must not be empty"),
        (("report", "kunduz", "Captured", "--on", "2016-10-01", "--actor", "Taliban",
          "--source", "AP"), "would break later event kunduz-5"),
        (("retract", "kunduz", "kunduz-5", "--reason", "x"), "would break later event kunduz-6"),
        (("retract", "kunduz", "kunduz-99", "--reason", "x"), "kunduz has no control event"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(
    cli: object, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    before = event_count(cli)
    capsys.readouterr()
    code, out = cli(*argv)  # type: ignore[operator]
    err = capsys.readouterr().err
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("dateline: error: ")
    assert message in err
    assert event_count(cli) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("status", "kunduz", "--as-of", "2015-02-30"), "'2015-02-30' is not a date"),
        (("status", "kunduz", "--known-at", "2021-08-08T10:00"), "has no time zone"),
        (("report", "kunduz", "Seized", "--on", "2021-08-09", "--actor", "T", "--source", "AP"),
         "'Seized' is not an event type"),
    ],
)  # fmt: skip
def test_malformed_arguments_exit_2_naming_the_argument(
    cli: object, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(*argv)  # type: ignore[operator]
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
