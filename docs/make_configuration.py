"""Rewrite the key table in docs/configuration.md from gate/config.py: python docs/make_configuration.py"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gate.config import describe  # noqa: E402

BEGIN, END = "<!-- keys:begin -->", "<!-- keys:end -->"


def main() -> None:
    doc = ROOT / "docs" / "configuration.md"
    text = doc.read_text()
    rows = "\n".join(f"| `{k}` | {t.replace('|', '&#124;')} | `{d}` | {h} |" for k, t, d, h in describe())
    table = f"{BEGIN}\n| key | type | default | meaning |\n|---|---|---|---|\n{rows}\n{END}"
    head, rest = text.split(BEGIN, 1)
    doc.write_text(head + table + rest.split(END, 1)[1])


if __name__ == "__main__":
    main()
