"""Check-in lists as data (gate/rules.py): validation, signing, the CLI; and their judgement (gate/admission.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from zoneinfo import ZoneInfo

import pytest

from gate.admission import PassState, judge
from gate.keys import IssuerKey, Keyring
from gate.outcomes import Outcome, Reason
from gate.rules import CheckinList, RulesError, load, sign, verify

BERLIN = ZoneInfo("Europe/Berlin")
Cli = Callable[..., CompletedProcess[str]]


def at(day: int, hour: int, minute: int = 0) -> float:
    """A time at the venue (Berlin, July 2026: UTC+2)."""
    return dt.datetime(2026, 7, day, hour, minute, tzinfo=BERLIN).timestamp()


# the list as data -----------------------------------------------------------------------------------
def test_signed_list_round_trips(scheme: str) -> None:
    key = IssuerKey.new("show7", scheme)
    lst = CheckinList("vip", "show7", version=3, products=("vip",), entries=2, reentry=True)
    assert verify(sign(lst, key), Keyring([key.verify_key()])) == lst


def test_a_changed_list_is_refused(scheme: str) -> None:
    key = IssuerKey.new("show7", scheme)
    doc = sign(CheckinList("vip", "show7", products=("vip",)), key)
    doc["list"]["products"] = ["vip", "general"]
    with pytest.raises(RulesError, match="bad signature"):
        verify(doc, Keyring([key.verify_key()]))


def test_a_list_of_an_untrusted_key_or_other_event_is_refused() -> None:
    key, other = IssuerKey.new("show7", "hmac"), IssuerKey.new("show8", "hmac")
    with pytest.raises(RulesError, match="does not hold"):
        verify(sign(CheckinList("vip", "show7"), key), Keyring([other.verify_key()]))
    with pytest.raises(RulesError, match="for event"):
        sign(CheckinList("vip", "show7"), other)


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "a", "event": "e", "entries": -1}, "entries"),
    ({"name": "a", "event": "e", "entries": "2"}, "'entries' must be int"),
    ({"name": "a", "event": "e", "timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"name": "a", "event": "e", "windows": [[5, 5]]}, "window"),
    ({"name": "a", "event": "e", "entires": 2}, "unknown field"),
    ({"event": "e"}, "'name' is required"),
    ({"name": "", "event": "e"}, "name must be"),
])
def test_a_bad_list_is_a_clear_error(fields: dict[str, object], message: str) -> None:
    with pytest.raises(RulesError, match=message):
        CheckinList.from_json(fields)


def test_source_toml_with_datetimes(tmp_path: Path) -> None:
    src = tmp_path / "lists.toml"
    src.write_text('[[list]]\nname = "day"\nevent = "show7"\ntimezone = "Europe/Berlin"\nper_day = true\n'
                   'windows = [[2026-07-01T08:00:00+02:00, 2026-07-04T00:00:00+02:00]]\n')
    (lst,) = CheckinList.from_source(src)
    assert lst.windows == ((int(at(1, 8)), int(at(4, 0))),)
    src.write_text('[[list]]\nname = "day"\nevent = "show7"\nwindows = [[2026-07-01T08:00:00, 5]]\n')
    with pytest.raises(RulesError, match="no UTC offset"):
        CheckinList.from_source(src)


def test_cli_signs_and_shows_lists(gate_cli: Cli, issuer: IssuerKey, home: Path, tmp_path: Path) -> None:
    src = tmp_path / "lists.toml"
    src.write_text('[[list]]\nname = "vip"\nevent = "show7"\nproducts = ["vip"]\nreentry = true\nversion = 2\n'
                   '[[list]]\nname = "pass3"\nevent = "show7"\nper_day = true\ntimezone = "Europe/Berlin"\n')
    signed = gate_cli("lists", "sign", str(src), "--out", str(tmp_path / "out"))
    assert signed.returncode == 0, signed.stderr
    shown = gate_cli("lists", "show", str(tmp_path / "out" / "vip.list.json"), str(tmp_path / "out" / "pass3.list.json"))
    assert shown.returncode == 0, shown.stderr
    assert "vip@2 (show7, UTC): vip; 1 entry in total, re-entry after exit" in shown.stdout
    assert "pass3@1 (show7, Europe/Berlin): every product; 1 entry a day" in shown.stdout
    doc = json.loads((tmp_path / "out" / "vip.list.json").read_text())
    doc["list"]["entries"] = 9
    (tmp_path / "out" / "vip.list.json").write_text(json.dumps(doc))
    bad = gate_cli("lists", "show", str(tmp_path / "out" / "vip.list.json"))
    assert bad.returncode == 2 and "bad signature" in bad.stderr and "Traceback" not in bad.stderr
    assert load(tmp_path / "out" / "pass3.list.json", Keyring([issuer.verify_key()])).per_day


# the judgement ----------------------------------------------------------------------------------------
def run(lst: CheckinList, scans: list[tuple[float, str]], product: str = "") -> list[str]:
    """Judge scans in order, carrying the state; the reason codes (ADMIT as 'ok', exits as 'exit')."""
    state, out = PassState(), []
    for when, direction in scans:
        ruling = judge(lst, product, state, when, direction)  # type: ignore[arg-type]
        state = ruling.state
        out.append("ok" if ruling.reason is Reason.NONE else ruling.reason.value)
    return out


def test_three_day_pass_once_per_day_across_the_venue_midnight() -> None:
    lst = CheckinList("pass3", "show7", per_day=True, timezone="Europe/Berlin",
                      windows=((int(at(1, 0)), int(at(4, 0))),))
    # 23:59 and 00:01 Berlin are different venue days, though the same UTC day (21:59 and 22:01 UTC)
    scans = [(at(1, 10), "in"), (at(1, 23, 59), "in"), (at(2, 0, 1), "in"), (at(2, 18), "in"),
             (at(3, 9), "in"), (at(4, 9), "in")]
    assert run(lst, scans) == ["ok", "entries_exhausted", "ok", "entries_exhausted", "ok", "outside_time_window"]
    refused = judge(lst, "", judge(lst, "", PassState(), at(1, 10), "in").state, at(1, 12), "in")
    assert refused.outcome is Outcome.ALREADY_USED
    assert refused.detail == "1 entry a day used; next entry allowed from 2026-07-02 00:00"


def test_reentry_after_exit_and_already_inside() -> None:
    lst = CheckinList("stadium", "show7", reentry=True)
    assert run(lst, [(1, "in"), (2, "out"), (3, "in"), (4, "in"), (5, "out"), (6, "in")]) == [
        "ok", "exit", "ok", "already_inside", "exit", "ok"]


def test_once_ever_list_says_already_used_like_today() -> None:
    assert run(CheckinList("main", "show7"), [(1, "in"), (2, "out"), (3, "in")]) == ["ok", "exit", "already_used"]


def test_at_most_n_entries_and_minutes_between() -> None:
    lst = CheckinList("gym", "show7", entries=3, min_gap=10, timezone="Europe/Berlin")
    t = at(1, 14)
    assert run(lst, [(t, "in"), (t + 60, "in"), (t + 600, "in"), (t + 1200, "in"), (t + 1800, "in")]) == [
        "ok", "too_soon", "ok", "ok", "entries_exhausted"]
    ruling = judge(lst, "", judge(lst, "", PassState(), at(1, 13, 55), "in").state, at(1, 14), "in")
    assert ruling.reason is Reason.TOO_SOON and ruling.detail == "next entry allowed after 2026-07-01 14:05"


def test_unlimited_entries() -> None:
    assert run(CheckinList("bar", "show7", entries=0), [(i, "in") for i in range(5)]) == ["ok"] * 5


def test_vip_list_refuses_a_general_ticket_even_on_exit() -> None:
    lst = CheckinList("vip", "show7", products=("vip",))
    assert run(lst, [(1, "in")], product="general") == ["not_this_list"]
    assert run(lst, [(1, "in")], product="") == ["not_this_list"]
    assert run(lst, [(1, "in"), (2, "out")], product="vip") == ["ok", "exit"]
    assert judge(lst, "general", PassState(), 1, "in").outcome is Outcome.INVALID


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Asia/Kathmandu", "America/St_Johns", "Australia/Lord_Howe",
                                  "Pacific/Chatham", "UTC"])
def test_the_venue_day_matches_the_time_zone_at_every_minute_around_midnights_and_dst(zone: str) -> None:
    lst = CheckinList("d", "show7", per_day=True, timezone=zone)
    tz = ZoneInfo(zone)
    start = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
    for day in range(365):  # every day of 2026, so both DST changes of each zone are among them
        for minute in range(0, 24 * 60, 11):
            t = start + day * 86400 + minute * 60 + 13
            assert lst.day(t) == dt.datetime.fromtimestamp(t, tz).date().isoformat(), (zone, t)
