"""Break the product on purpose, one named mutation at a time, and report which tests catch each.

    .venv/bin/python tests/mutate.py              # every mutation on the list (a few minutes)
    .venv/bin/python tests/mutate.py --list       # the list: name, file, what it breaks
    .venv/bin/python tests/mutate.py replay-restreamed no-fsync   # some of them
    .venv/bin/python tests/mutate.py no-fsync --tests tests/test_concurrency.py   # against other tests

Each mutation replaces one exact piece of the product's code (it must occur exactly once, or the
mutation is reported stale) and runs only the tests named for it, in a copy of the tree (the files git
knows, as they are now on disk): the checkout is never changed, even if this is interrupted.  First the
chosen tests run once unmutated and must pass; then, per mutation, they must fail.  The exit code is 0
only if every chosen mutation was caught, so a test that stops proving its name fails this script.

The list sits on the promises a gate makes (a commit before ADMIT, revocations, signatures, idempotency
by scan id, the stream's order, conflicts recorded) and on the places a review found tests that did
not look (issue 18).  Add a mutation with the test that is meant to catch it.
"""

from __future__ import annotations

import argparse
import py_compile
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    breaks: str


MUTATIONS = [
    Mutation("replay-restreamed", "sync/arbiter/store.py",
             "            return self._answer_of(db, c.scan)\n        if revoked:",
             "            if prior[2] == 'won':\n"
             "                self._emit(db, stream, now, kind='redemption', event=c.event, ticket=c.ticket,"
             " gen=c.gen, scan=c.scan, gate=c.gate, at=c.at, arbiter_at=now)\n"
             "            return self._answer_of(db, c.scan)\n        if revoked:",
             ("tests/test_sync_messages.py::test_duplicated_reordered_and_replayed_messages_change_nothing",),
             "the arbiter streams a replayed winning claim again as a new redemption"),
    Mutation("price-in-release", "gate/ownership/wallet.py",
             '''"buyer": deal.other, "generation": held.generation,''',
             '''"buyer": deal.other, "generation": held.generation, "amount": deal.amount,''',
             ("tests/test_chain_flows.py::test_resale_alice_to_bob_raises_the_generation_and_hides_the_price",
              "tests/test_chain_cli.py::test_the_story_with_the_real_command"),
             "the seller's wallet puts the resale price into its release block (the box office stores it)"),
    Mutation("no-fsync", "gate/store.py", '''what="store",''', '''what="store", synchronous="OFF",''',
             ("tests/test_powercut.py",),
             "the gate's store commits with synchronous=OFF: ADMIT survives a process crash, not a power cut"),
    Mutation("wal-unsynced-commit", "gate/store.py", '''what="store",''', '''what="store", synchronous="NORMAL",''',
             ("tests/test_powercut.py",),
             "the gate's store commits with synchronous=NORMAL: in WAL mode a commit is synced only at checkpoints"),
    Mutation("check-then-insert", "gate/store.py",
             "        with self.transaction() as tx:\n            refused = tx.refused(scan)\n            if refused is not None:\n"
             "                return refused\n            if tx.take(scan, provisional=provisional):",
             "        fresh = self.first_use(scan.event, scan.ticket_id) is None\n"
             "        with self.transaction() as tx:\n            refused = tx.refused(scan)\n            if refused is not None:\n"
             "                return refused\n            if fresh and (tx.take(scan, provisional=provisional) or True):",
             ("tests/test_concurrency.py::test_two_processes_racing_over_1000_tickets_admit_each_exactly_once",),
             "redeem checks the redeemed set before its transaction and admits whatever the insert finds"),
    Mutation("scans-dropped-uncounted", "sync/gateside/feed.py",
             '''        self.counters.add("scans_sent" if sent else "scans_dropped")''',
             '''        if sent:\n            self.counters.add("scans_sent")''',
             ("tests/test_dashboard_feed.py::test_without_a_broker_the_decision_stands_and_the_scan_is_dropped_and_counted",),
             "a scan the broker cannot take is no longer counted (scans_dropped, the dashboard's 'dropped')"),
    Mutation("broker-identity-not-bound", "systemd/mosquitto/qrgate.conf.template",
             "use_identity_as_username true\n", "use_identity_as_username false\n",
             ("tests/test_deploy_broker.py::test_a_certificate_speaks_only_as_its_own_user",),
             "the broker takes the user name a client sends, not its certificate's (one gate's certificate with "
             "the dashboard's password speaks as the dashboard)"),
    Mutation("no-integrity-check", "gate/store.py", "busy_timeout=busy_timeout, check=check))",
             "busy_timeout=busy_timeout, check=False))",
             ("tests/test_store.py::test_a_corrupted_page_fails_the_integrity_check",
              "tests/test_sdnotify.py::test_gate_run_on_a_corrupt_store_never_says_ready"),
             "the gate opens its store without the integrity check"),
    Mutation("demo-frames-blank", "gate/cli/demo.py",
             "        frames += [held[i % len(held)] for i in range(FRAMES_PER_SHOWING)]",
             "        frames += [idle[i % len(idle)] for i in range(FRAMES_PER_SHOWING)]",
             ("tests/test_scanloop.py::test_demo_frames_decode",),
             "the demo's frames never show the code (as many files, all idle)"),
    Mutation("asked-then-admitted-no-conflict", "sync/arbiter/store.py",
             "                if prior[2] == \"lost\":\n                    self._conflict(db, c, now, stream)\n", "",
             ("tests/test_sync_outage.py::test_broker_stopped_mid_run_and_restarted_loses_nothing_and_applies_nothing_twice",),
             "a claim the arbiter answered 'lost' while the gate, unanswered, admitted offline is no conflict"),
    # the critical paths (issue 18's list): commit, revocation, signature, idempotency, stream order, conflicts
    Mutation("fault-admits", "gate/decide.py", "            return self._fault(scan, verdict, exc)\n        except Exception",
             "            return self._decision(scan, verdict, Outcome.ADMIT, None, Reason.NONE, '')\n        except Exception",
             ("tests/test_store.py",),
             "a store that cannot commit the redemption answers ADMIT instead of FAULT (fail open)"),
    Mutation("revocation-ignored", "gate/store.py", "        if revoked:\n            self.audit(scan, Outcome.REVOKED",
             "        if False:\n            self.audit(scan, Outcome.REVOKED",
             ("tests/test_store.py",),
             "the gate's redemption skips its revocation list"),
    Mutation("arbiter-revocation-ignored", "sync/arbiter/store.py",
             "        if revoked:\n            self._remember(db, c, \"revoked\", now)",
             "        if False:\n            self._remember(db, c, \"revoked\", now)",
             ("tests/test_sync_arbiter_store.py",),
             "the arbiter's compare-and-set skips its revocation list"),
    Mutation("hmac-unchecked", "gate/keys.py",
             "            return hmac.compare_digest(hmac_tag(self.material, signed.signed), signed.tag)",
             "            return True",
             ("tests/test_store.py", "tests/test_worked_example.py", "tests/test_ticket_format.py"),
             "an HMAC tag is not checked"),
    Mutation("ed25519-unchecked", "gate/keys.py",
             "            except InvalidSignature:\n                return False",
             "            except InvalidSignature:\n                return True",
             ("tests/test_store.py", "tests/test_worked_example.py", "tests/test_ticket_format.py"),
             "a bad Ed25519 signature is accepted"),
    Mutation("replayed-scan-used", "gate/store.py", "            if first is not None and first.scan_id == scan.scan_id:",
             "            if False:",
             ("tests/test_store.py",),
             "a retried redemption with the same scan id answers ALREADY_USED (no idempotency by scan id)"),
    Mutation("arbiter-replay-decided-again", "sync/arbiter/store.py", "        if prior is not None:\n            if (prior[0], prior[1])",
             "        if False:\n            if (prior[0], prior[1])",
             ("tests/test_sync_arbiter_store.py",),
             "the arbiter decides a replayed scan id afresh instead of giving its first answer"),
    Mutation("stream-gap-applied", "gate/sequence.py", "        if seq != position + 1:\n            return out, True",
             "        if False:\n            return out, True",
             ("tests/test_sync_ledger.py",),
             "a follower applies a stream item past a gap instead of catching up first"),
    Mutation("stream-replay-applied", "gate/sequence.py", "        if seq <= position:\n            continue",
             "        if False:\n            continue",
             ("tests/test_sync_ledger.py",),
             "a follower applies a duplicated or replayed stream item again"),
    Mutation("conflict-unrecorded", "sync/arbiter/store.py",
             "        if c.admitted:\n            self._conflict(db, c, now, stream)\n        return self._answer_of(db, c.scan)",
             "        return self._answer_of(db, c.scan)",
             ("tests/test_sync_arbiter_store.py",),
             "a late (admitted) claim that finds the ticket held is not recorded as a conflict"),
]


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root, capture_output=True,
                         text=True, check=True).stdout
    return [name for name in out.splitlines() if (root / name).is_file()]


def copy_tree(root: Path, dest: Path) -> None:
    for name in tracked_files(root):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)


def run_tests(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[bool, str]:
    """(passed, the last lines of pytest's output), pytest run inside `tree` so the copy is imported."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    lines = done.stdout.splitlines()
    why = [line for line in lines if line.startswith("E ")][:1]  # the first failed assertion says what caught it
    failed = [line.split()[1].split("::")[-1] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return done.returncode == 0, "\n         ".join([*why, *failed, *[line for line in lines if line.strip()][-1:]])


def apply(tree: Path, m: Mutation) -> str | None:
    """Write mutation `m` into `tree`; the reason it cannot be applied, if any."""
    path = tree / m.path
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        return f"stale: the code to mutate occurs {count} times in {m.path}"
    path.write_text(text.replace(m.old, m.new))
    if path.suffix == ".py":
        try:
            py_compile.compile(str(path), doraise=True)
        except py_compile.PyCompileError as exc:
            return f"the mutated file does not compile: {exc.msg}"
    return None


def check(tree: Path, m: Mutation, timeout: float) -> tuple[str, str]:
    """("caught" | "SURVIVED" | "STALE", detail) for one mutation, the file restored afterwards."""
    original = (tree / m.path).read_bytes()
    try:
        problem = apply(tree, m)
        if problem:
            return "STALE", problem
        passed, tail = run_tests(tree, m.tests, timeout)
        return ("SURVIVED" if passed else "caught"), tail
    finally:
        (tree / m.path).write_bytes(original)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per pytest run")
    parser.add_argument("--tests", nargs="+", help="run these tests instead of each mutation's own (to see "
                        "which other tests are blind to it)")
    args = parser.parse_args(argv)
    by_name = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:28} {m.path:32} {m.breaks}")
        return 0
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        parser.error(f"no mutation named {', '.join(unknown)} (see --list)")
    chosen = [by_name[n] for n in args.names] or MUTATIONS
    if args.tests:
        chosen = [replace(m, tests=tuple(args.tests)) for m in chosen]
    with tempfile.TemporaryDirectory(prefix="qrgate-mutate-") as tmp:
        tree = Path(tmp)
        copy_tree(ROOT, tree)
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        passed, tail = run_tests(tree, tests, args.timeout * 2)
        if not passed:
            print(f"the chosen tests fail without any mutation, nothing to learn: {tail}")
            return 2
        survived = 0
        for m in chosen:
            start = time.monotonic()
            verdict, detail = check(tree, m, args.timeout)
            survived += verdict != "caught"
            print(f"{verdict:8} {m.name:28} {time.monotonic() - start:5.0f} s  {m.breaks}\n         {detail}",
                  flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
