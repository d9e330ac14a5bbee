"""Every prompt lives here as a Markdown file; this tiny loader renders them (holmesgpt's habit).

Conventions:

* ``load_prompt("system")`` reads ``prompts/system.md``; names may carry a folder
  (``"tools/metrics"``) and may omit ``.md``.
* Files whose name starts with ``_`` are partials. A prompt includes one with
  ``{% include '_safety.md' %}`` (on a line of its own or inline); includes nest, and a cycle is
  an error.
* ``{{ name }}`` is replaced by the keyword argument ``name``. A variable the prompt uses but the
  caller did not pass is an error (a silently empty slot is how prompts rot). ``now`` is added
  automatically: the current UTC time, unless the caller passes its own (pinned clocks).
* ``system_prompt(...)`` assembles the agent's system prompt: ``system.md`` plus the
  instructions of each tool group the agent has (``tools/<group>.md``), the fleet context and
  anything recalled from memory.

No prompt text lives in Python code. This package imports nothing of ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent
SUFFIXES = (".md", ".txt")

_INCLUDE = re.compile(r"\{%\s*include\s+['\"]([^'\"]+)['\"]\s*%\}")
_VARIABLE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")

__all__ = ["PROMPTS_DIR", "PromptError", "load_prompt", "list_prompts", "prompt_path",
           "prompt_variables", "system_prompt", "tool_instructions", "render"]


class PromptError(ValueError):
    """A prompt is missing, includes itself, or needs a variable that was not given."""


def prompt_path(name: str) -> Path:
    """The file of prompt ``name`` (``"system"``, ``"tools/fleet"``, ``"_safety.md"``)."""
    clean = name.strip().lstrip("/")
    if ".." in Path(clean).parts:
        raise PromptError(f"Prompt name {name!r} may not leave the prompts folder.")
    candidates = [PROMPTS_DIR / clean] if clean.endswith(SUFFIXES) else [PROMPTS_DIR / f"{clean}{s}" for s in SUFFIXES]
    for path in candidates:
        if path.is_file():
            return path
    raise PromptError(f"No prompt named {name!r}. Known prompts: {', '.join(list_prompts(partials=True))}.")


def list_prompts(*, partials: bool = False) -> list[str]:
    """Names of the prompt files (without suffix), e.g. ``["summarize_conversation", "system", ...]``."""
    names = []
    for path in sorted(PROMPTS_DIR.rglob("*")):
        if path.suffix not in SUFFIXES or not path.is_file():
            continue
        if path.name.startswith("_") and not partials:
            continue
        names.append(path.relative_to(PROMPTS_DIR).with_suffix("").as_posix())
    return names


@lru_cache(maxsize=128)
def _read(path: Path, mtime_ns: int) -> str:
    return path.read_text(encoding="utf-8")


def _source(name: str) -> str:
    path = prompt_path(name)
    return _read(path, path.stat().st_mtime_ns)


def _expand(name: str, stack: tuple[str, ...] = ()) -> str:
    """The prompt's text with every include replaced by the included file (recursively)."""
    key = prompt_path(name).relative_to(PROMPTS_DIR).as_posix()
    if key in stack:
        raise PromptError(f"Prompt include cycle: {' -> '.join((*stack, key))}.")
    text = _source(name)
    return _INCLUDE.sub(lambda m: _expand(m.group(1), (*stack, key)).strip("\n"), text)


def prompt_variables(name: str) -> set[str]:
    """The ``{{ variables }}`` a prompt (with its includes) needs."""
    return set(_VARIABLE.findall(_expand(name)))


def render(text: str, variables: dict[str, object]) -> str:
    """Fill ``{{ name }}`` slots from ``variables``; a missing one raises :class:`PromptError`."""
    missing = sorted(set(_VARIABLE.findall(text)) - set(variables))
    if missing:
        raise PromptError(f"Missing prompt variable(s): {', '.join(missing)}.")
    return _VARIABLE.sub(lambda m: str(variables[m.group(1)]), text)


def load_prompt(name: str, **variables: object) -> str:
    """Render prompt ``name`` with its includes and ``variables`` (``now`` defaults to UTC now)."""
    variables.setdefault("now", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    return render(_expand(name), variables).strip() + "\n"


def tool_instructions(groups: Iterable[str]) -> str:
    """The per-group instructions (``tools/<group>.md``) for the tool groups the agent has."""
    parts = []
    for group in sorted(set(groups)):
        try:
            parts.append(load_prompt(f"tools/{group}").strip())
        except PromptError:
            continue  # a group without instructions is allowed; the test lists the known ones
    return "\n\n".join(parts)


def system_prompt(*, now: datetime | str | None = None, fleet_context: str = "",
                  tool_groups: Iterable[str] = (), memories: str = "", preferences: str = "",
                  user: str = "") -> str:
    """The agent's system prompt: ``system.md`` with time, fleet context, tools and memory."""
    if isinstance(now, datetime):
        now = now.strftime("%Y-%m-%d %H:%M UTC")
    return load_prompt(
        "system",
        now=now or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        fleet_context=fleet_context.strip() or "(no fleet snapshot available)",
        tool_instructions=tool_instructions(tool_groups) or "(no tools available)",
        memories=memories.strip() or "(nothing relevant recalled)",
        preferences=preferences.strip() or "(none stated)",
        user=user or "the on-call operator",
    )
