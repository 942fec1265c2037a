"""The dashboard's accounts file, its login throttle and its sessions, on their own (tmp_path, a fake clock)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sync.dashboard.accounts import AccountError, Accounts, hash_password, verify_password
from sync.dashboard.auth import Sessions, Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_hash_is_salted_scrypt_and_checks_only_its_password() -> None:
    one, two = hash_password("correct horse"), hash_password("correct horse")
    assert one.startswith("scrypt$16384$8$1$") and one != two  # a salt of its own
    assert verify_password("correct horse", one) and verify_password("correct horse", two)
    assert not any(verify_password(p, one) for p in ("correct hors", "correct horse ", "", "CORRECT HORSE"))
    for broken in ("", "scrypt$", "scrypt$16384$8$1$@@$@@", "$7$101$x$y", one.replace("16384", "1048577")):
        assert not verify_password("correct horse", broken)


def test_accounts_are_added_replaced_removed_and_reread(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "dashboard.accounts")
    assert accounts.all() == {} and accounts.check("alice", "whatever pw") is None
    assert accounts.add("alice", "admin", "alice's password") is False
    assert accounts.add("bob", "viewer", "bob's password") is False
    assert stat.S_IMODE(accounts.path.stat().st_mode) == 0o600
    other = Accounts(accounts.path)  # another process: the server while the CLI edits
    assert {a.name: a.role for a in other.all().values()} == {"alice": "admin", "bob": "viewer"}
    assert other.check("alice", "alice's password") is not None and other.check("alice", "bob's password") is None
    assert accounts.add("bob", "admin", "bob's new password") is True
    assert other.check("bob", "bob's password") is None and other.get("bob").role == "admin"  # type: ignore[union-attr]
    assert accounts.remove("bob") and not accounts.remove("bob")
    assert other.get("bob") is None and "bob" not in accounts.path.read_text()


def test_bad_names_roles_passwords_and_lines_are_clear_errors(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "a")
    for name, role, password, match in (("al:ice", "admin", "long enough", "account name"),
                                        ("alice", "root", "long enough", "role"),
                                        ("alice", "admin", "short", "at least 10")):
        with pytest.raises(AccountError, match=match):
            accounts.add(name, role, password)
    accounts.path.write_text("alice:admin\n")
    with pytest.raises(AccountError, match=r"a, line 1: expected NAME:ROLE:scrypt"):
        accounts.all()


def test_a_rewrite_keeps_the_files_group_and_mode_for_the_service(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "a")
    accounts.add("alice", "admin", "alice's password")
    os.chmod(accounts.path, 0o640)  # the README's install: root:qrgate-dashboard, group-readable
    if os.getuid() == 0:
        os.chown(accounts.path, 0, 4321)
    accounts.add("bob", "viewer", "bob's password")
    st = accounts.path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    if os.getuid() == 0:
        assert st.st_gid == 4321


def test_the_throttle_reserves_checks_per_name_and_overall() -> None:
    clock = Clock()
    throttle = Throttle(clock, per_name=(5, 60.0), overall=(8, 2.0))
    assert [throttle.take("alice") for _ in range(7)] == [0.0] * 5 + [60.0, 60.0]
    clock.now += 60
    assert throttle.take("alice") == 0.0 and throttle.take("alice") > 0  # one more a minute
    throttle.succeeded("bob")  # a success gives its reservation back
    assert [throttle.take("bob") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert [throttle.take(f"name{n}") for n in range(6)] == [0.0] * 5 + [2.0]  # the server's 8 are used up
    assert throttle.take("dave") == 2.0 and throttle.take("dave") == 2.0  # a refusal overall costs dave nothing
    clock.now += 2
    assert throttle.take("dave") == 0.0


def test_a_session_ends_at_logout_expiry_removal_and_a_new_password(tmp_path: Path) -> None:
    clock = Clock()
    accounts = Accounts(tmp_path / "a")
    for name in ("alice", "bob", "carol"):
        accounts.add(name, "viewer", f"{name}'s password")
    sessions = Sessions(accounts, 3600, clock)
    tokens = {name: sessions.open(accounts.get(name))[0] for name in ("alice", "bob", "carol")}  # type: ignore[arg-type]
    assert all(sessions.find(t) for t in tokens.values()) and sessions.find("forged") is None
    sessions.close(tokens["alice"])
    accounts.remove("bob")
    accounts.add("carol", "viewer", "carol's new password")
    assert [sessions.find(t) for t in tokens.values()] == [None, None, None]
    token, session = sessions.open(accounts.get("carol"))  # type: ignore[arg-type]
    assert session.csrf_ok(session.csrf) and not session.csrf_ok("x") and not session.csrf_ok(None)
    clock.now += 3601
    assert sessions.find(token) is None
