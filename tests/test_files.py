"""Key and credential files are written whole and never through a symbolic link (gate/files.py).

Written against gate.deploy.pki.write_private, which every provisioned secret goes through (and which
wrote through a planted link before issue 12)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gate.deploy.pki import write_private


def test_a_planted_link_at_the_temporary_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / ".client.key.tmp").symlink_to(victim)  # someone who can write the folder, not the victim
    write_private(tmp_path / "keys" / "client.key", b"secret key\n")
    assert victim.read_text() == "precious\n"
    assert (tmp_path / "keys" / "client.key").read_bytes() == b"secret key\n"
    assert stat.S_IMODE((tmp_path / "keys" / "client.key").stat().st_mode) == 0o600
    assert not (tmp_path / "keys" / ".client.key.tmp").exists()


def test_a_key_file_that_is_a_link_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "client.key").symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        write_private(tmp_path / "client.key", b"secret key\n")
    assert victim.read_text() == "precious\n" and (tmp_path / "client.key").is_symlink()


def test_a_key_file_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    """gate/keys.py writes issuer keys and keyrings the same way: a link at the key's name is refused."""
    from gate.exc import KeyFileError
    from gate.keys import IssuerKey, KeyStore

    victim = tmp_path / "victim"
    victim.write_text("keep me")
    key = IssuerKey.new("show7")
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys" / f"issuer-{key.kid}.json").symlink_to(victim)
    with pytest.raises(KeyFileError, match="symbolic link"):
        KeyStore(tmp_path / "keys").add_issuer_key(key)
    assert victim.read_text() == "keep me"
