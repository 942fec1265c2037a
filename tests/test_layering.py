"""The package layering, read from the source (ast), so it survives the next feature (docs/architecture.md).

Rules:

* the decision core (tickets, keys, verify, decide, the gate's store and ledger, config) imports no MQTT,
  camera, decoder, GPIO or HTTP library, and nothing of sync, hardware, the daemon, the CLI, deployment
  or the ownership services;
* hardware takes only the outcome codes from gate;
* sync never imports the CLI, the daemon, the wiring or the ownership services;
* nothing imports the CLI but the CLI itself (the console script is its only user);
* no import circle between modules (imports under ``if TYPE_CHECKING:`` are for the type checker only);
* each database has one writer: every INSERT/UPDATE/DELETE lives in the store module of its database, and
  every schema change (CREATE/ALTER/DROP) is a step of a recorded migration list (a module-level name
  ending in ``MIGRATIONS``).

Run it on any tree: ``python -m pytest tests/test_layering.py --root DIR`` is not needed; the functions
take the root so the old tree can be checked too (see the note on issue 11).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gate", "sync", "hardware")

CORE = ("gate.exc", "gate.outcomes", "gate.base45", "gate.ticket", "gate.keys", "gate.verify", "gate.decide",
        "gate.holder", "gate.backstep", "gate.store", "gate.ledger", "gate.migrations", "gate.sqlite", "gate.sequence", "gate.config",
        "gate.files", "gate.product", "gate.rules", "gate.passes", "gate.admission", "gate.checkin", "gate.passledger",
        "gate.servedlist")
#: libraries and packages the decision core must not import (MQTT, cameras, decoders, GPIO, HTTP, the rest)
CORE_FORBIDDEN = ("paho", "cv2", "numpy", "zxingcpp", "pyzbar", "picamera2", "gpiozero", "http", "urllib.request",
                  "segno", "sync", "hardware", "gate.cli", "gate.daemon", "gate.deploy", "gate.ownership",
                  "gate.wiring")
SYNC_FORBIDDEN = ("gate.cli", "gate.daemon", "gate.wiring", "gate.ownership", "gate.deploy")
#: the one module that writes each database (gate.db: the store and its sync ledger, side by side in gate/)
WRITERS = {
    "gate.store": "the gate's store: redeemed set, audit log, revocations, generations",
    "gate.ledger": "the gate's store: outbox, conflicts, stream position",
    "gate.passledger": "the gate's store: the outbox of check-in list transitions",
    "sync.arbiter.store": "the arbiter's store",
    "sync.arbiter.pgstore": "the arbiter's store on PostgreSQL (its stream counter and migrations; the rest is"
                            " sync.arbiter.store's code on its connection)",
    "sync.arbiter.passes": "the arbiter's store: check-in list states (inside its transaction)",
    "sync.dashboard.history": "the dashboard's history",
    "gate.ownership.store": "the box office's, wallets' and payment agents' files",
    "gate.sqlite": "schema_migrations of every file",
}
#: tables of the gate's database and which of its two modules writes each
GATE_TABLES = {"redeemed": "gate.store", "audit": "gate.store", "revoked": "gate.store", "generations": "gate.store",
               "passes": "gate.store",
               "outbox": "gate.ledger", "conflicts": "gate.ledger", "sync_state": "gate.ledger",
               "pass_outbox": "gate.passledger", "checkin_lists": "gate.ledger",
               "pass_conflicts": "gate.ledger"}
DML = re.compile(r"\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)|(?<!DO )UPDATE\s+(\w+)\s+SET|DELETE\s+FROM\s+(\w+)"
                 r"|REPLACE\s+INTO\s+(\w+))", re.I)
DDL = re.compile(r"^\s*(?:CREATE|ALTER|DROP)\s+(?:TABLE|INDEX|TRIGGER|VIEW|UNIQUE\s+INDEX)", re.I)


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    type_only: bool


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """Every import in the module (top level and inside functions), resolved to the module it loads."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for grandchild in child.body:
                    visit_one(grandchild, True)
                for grandchild in child.orelse:
                    visit_one(grandchild, type_only)
                continue
            visit_one(child, type_only)

    def visit_one(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(name, alias.name, node.lineno, type_only))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                base = ".".join([*here, base] if base else here)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(Import(name, sub if sub in known else base, node.lineno, type_only))
        visit(node, type_only)

    visit(tree, False)
    return found


def graph(root: Path) -> tuple[dict[str, Path], list[Import]]:
    known = modules(root)
    return known, [i for name, path in known.items() for i in imports(name, path, known)]


def _under(target: str, prefixes: tuple[str, ...]) -> str | None:
    return next((p for p in prefixes if target == p or target.startswith(p + ".")), None)


def layering_violations(root: Path) -> list[str]:
    _known, edges = graph(root)
    out = []
    for i in edges:
        where = f"{i.source} (line {i.line}) imports {i.target}"
        if i.source in CORE and (bad := _under(i.target, CORE_FORBIDDEN)):
            out.append(f"{where}: the decision core must not import {bad}")
        if i.source.startswith("hardware") and i.target.startswith("gate") and i.target != "gate.outcomes" \
                and not i.type_only:
            out.append(f"{where}: hardware takes only the outcome codes (gate.outcomes) from gate")
        if i.source.startswith("sync") and (bad := _under(i.target, SYNC_FORBIDDEN)):
            out.append(f"{where}: sync must not import {bad}")
        if _under(i.target, ("gate.cli",)) and not _under(i.source, ("gate.cli",)):
            out.append(f"{where}: nothing but the CLI itself imports the CLI")
        if i.source.startswith("gate") and not i.source.startswith(("gate.ownership", "gate.cli", "gate.wiring")) \
                and _under(i.target, ("gate.ownership",)):
            out.append(f"{where}: the gate core and daemon never import the ownership services")
    return out


def cycles(root: Path) -> list[list[str]]:
    """Import circles between modules (Tarjan's strongly connected components of the module graph)."""
    known, edges = graph(root)
    succ: dict[str, set[str]] = defaultdict(set)
    for i in edges:
        if not i.type_only and i.target in known and i.target != i.source:
            succ[i.source].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(known):
        if v not in index:
            strong(v)
    return found


def _strings(tree: ast.AST) -> list[tuple[ast.Constant, bool]]:
    """Every string constant, and whether it sits in the value of a module-level `...MIGRATIONS` assignment."""
    allowed: set[int] = set()
    for node in getattr(tree, "body", []):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        if any(isinstance(t, ast.Name) and t.id.endswith(("MIGRATIONS", "MIGRATION")) for t in targets):
            allowed |= {id(n) for n in ast.walk(node)}
    return [(n, id(n) in allowed) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def sql_violations(root: Path) -> list[str]:
    out = []
    for name, path in modules(root).items():
        for node, in_migrations in _strings(ast.parse(path.read_text(), str(path))):
            text = node.value
            if DDL.match(text) and not in_migrations and "schema_migrations" not in text:
                out.append(f"{name} (line {node.lineno}): a schema change outside a recorded migration list: "
                           f"{' '.join(text.split())[:70]}")
            writes = () if in_migrations else sorted({next(t for t in m if t) for m in DML.findall(text)})
            for table in writes:
                if name not in WRITERS:
                    out.append(f"{name} (line {node.lineno}) writes table {table}: only the store module of its "
                               f"database may ({', '.join(WRITERS)})")
                elif name in ("gate.store", "gate.ledger") and GATE_TABLES.get(table, name) != name:
                    out.append(f"{name} (line {node.lineno}) writes the gate's table {table}, which "
                               f"{GATE_TABLES[table]} owns")
    return out


def test_the_layers_hold() -> None:
    assert layering_violations(ROOT) == []


def test_no_import_circle() -> None:
    assert cycles(ROOT) == []


def test_each_database_has_one_writer_and_every_schema_change_is_a_migration() -> None:
    assert sql_violations(ROOT) == []


#: what importing a pure module must not load (module -> libraries it has no use for)
LIGHT = {"sync.wire": ("paho", "http.server", "cryptography", "sync.arbiter", "gate.decide"),
         "hardware.feedback": ("cryptography", "gate.decide", "gate.store", "cv2", "zxingcpp", "paho"),
         "gate.ticket": ("cryptography", "sqlite3", "paho"),
         "gate": ("cryptography", "sqlite3", "gate.decide")}


@pytest.mark.parametrize("module", sorted(LIGHT))
def test_importing_a_pure_module_loads_only_what_it_uses(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
                 .stdout.split())
    heavy = [lib for lib in LIGHT[module] if lib in loaded or any(m.startswith(lib + ".") for m in loaded)]
    assert heavy == [], f"import {module} loads {heavy}"


def test_the_checks_see_the_tree() -> None:
    """The rules are not vacuous: the modules they name exist and the import graph is read."""
    known, edges = graph(ROOT)
    assert set(CORE) | set(WRITERS) <= set(known), sorted(set(CORE) | set(WRITERS) - set(known))
    assert any(i.source == "gate.decide" and i.target == "gate.store" for i in edges)


if __name__ == "__main__":  # python tests/test_layering.py [ROOT]: the report for any tree
    where = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    problems = layering_violations(where) + [f"import circle: {' -> '.join(c)}" for c in cycles(where)]
    problems += sql_violations(where)
    print("\n".join(problems) or "the layering holds")
    sys.exit(1 if problems else 0)
