"""Settings for the surfaces: the table lives in ``tools/config.py``; this renders its docs.

``python -m app.settings --write-readme`` regenerates the settings table in README.md between
the ``settings:start`` / ``settings:end`` markers; a test fails when the two disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools.config import SETTINGS, Settings, load_settings

__all__ = ["SETTINGS", "Settings", "load_settings", "settings_markdown", "write_readme"]

START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def settings_markdown() -> str:
    lines = ["| variable | default | what it does |", "|---|---|---|"]
    for s in SETTINGS:
        default = "(unset)" if s.default in ("", None) else f"`{s.default}`"
        lines.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(lines)


def write_readme(path: Path) -> bool:
    """Rewrite the settings block of ``path``; return True when it changed."""
    text = path.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{settings_markdown()}\n{END}{tail}"
    if new != text:
        path.write_text(new)
        return True
    return False


if __name__ == "__main__":  # pragma: no cover
    if "--write-readme" in sys.argv:
        changed = write_readme(Path(__file__).resolve().parent.parent / "README.md")
        print("README.md updated" if changed else "README.md already current")
    else:
        print(settings_markdown())
