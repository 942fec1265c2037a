"""`gate keys ...`: issuer keys and gate keyrings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gate.cli.common import EXIT_ERROR, EXIT_OK, HOME_MADE, SubParsers, command
from gate.config import Config
from gate.keys import IssuerKey, KeyStore


def add(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    keys = sub.add_parser("keys", help="issuer keys and gate keyrings",
                          description="Issuer keys and gate keyrings.")
    ks = keys.add_subparsers(title="key commands", metavar="ACTION")
    p = command(ks, common, "new", cmd_keys_new, "create an issuer key for an event (file 0600)",
                 "gate keys new --event show7", home=HOME_MADE)
    p.add_argument("--event", required=True)
    p.add_argument("--scheme", choices=("ed25519", "hmac"), default="ed25519",
                   help="ed25519 (the default): gates hold public keys only and can mint nothing; hmac: shorter "
                        "codes, but a gate holding the event's key can mint tickets for that event")
    p.add_argument("--holder-only", action="store_true",
                   help="tickets of this key need their holder code (sold to wallets by the box office): a "
                        "plain QG: copy is refused at every gate and at the arbiter")
    command(ks, common, "list", cmd_keys_list, "list key ids, schemes and events", "gate keys list")
    p = command(ks, common, "export", cmd_keys_export,
                 "write what a gate needs to verify an event (derived HMAC key or public key)",
                 "gate keys export --event show7 --out show7.keyring.json")
    p.add_argument("--event", required=True)
    p.add_argument("--out", required=True, type=Path)
    p = command(ks, common, "import", cmd_keys_import, "install an exported keyring on this gate",
                 "gate keys import show7.keyring.json", home=HOME_MADE)
    p.add_argument("file", type=Path)
    p = command(ks, common, "retire", cmd_keys_retire, "retire a key id: its tickets are rejected",
                 "gate keys retire 3fa2c1d0")
    p.add_argument("kid")



def cmd_keys_new(args: argparse.Namespace, config: Config) -> int:
    key = IssuerKey.new(args.event, args.scheme, holder_only=args.holder_only)
    path = KeyStore(config.keys_dir).add_issuer_key(key)
    print(f"{key.kid} {key.scheme} {key.event} {path}")
    return EXIT_OK


def cmd_keys_list(args: argparse.Namespace, config: Config) -> int:
    store = KeyStore(config.keys_dir)
    issuers = {k.kid for k in store.issuer_keys()}
    for key in store.keyring():
        role = "issuer" if key.kid in issuers else "verify"
        flags = (' retired' if key.retired else '') + (' holder-only' if key.holder_only else '')
        print(f"{key.kid} {key.scheme:7} {key.event} {role}{flags}")
    return EXIT_OK


def cmd_keys_export(args: argparse.Namespace, config: Config) -> int:
    for key in KeyStore(config.keys_dir).export(args.event, args.out):
        print(f"{key.kid} {key.scheme} {key.event} -> {args.out}")
    return EXIT_OK


def cmd_keys_import(args: argparse.Namespace, config: Config) -> int:
    for key in KeyStore(config.keys_dir).import_keyring(args.file):
        print(f"{key.kid} {key.scheme} {key.event} imported")
    return EXIT_OK


def cmd_keys_retire(args: argparse.Namespace, config: Config) -> int:
    if not KeyStore(config.keys_dir).retire(args.kid):
        print(f"gate: error: no key with id {args.kid}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.kid} retired")
    return EXIT_OK
