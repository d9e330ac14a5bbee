"""Eval cases are data: ``evals/cases/<NNN_slug>/case.yaml``, parsed by pydantic with ``extra="forbid"``.

A case is a conversation (one or more user turns) with, per turn, what the agent should do:
the tool calls it should make (a name, or "any of" several, plus a *subset* of the arguments),
the facts its answer must carry (by NAME: small queries in ``evals/facts.py`` computed at run
time from the store and the simulator's ground truth, never numbers typed in here), text it must
not say, and whether it should answer, decline or ask. The folder name is the case id.

Entity names are never written into cases either: ``{site_a}``, ``{device_flagged}`` and the like
are placeholders bound at run time by named selectors over the seeded fleet (``evals.facts``), so
a case cannot hint at its answer and survives a change of seed. A misspelt tag, key, fact or
placeholder fails at load time with the file and the valid choices.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Difficulty = Literal["easy", "medium", "hard"]
Intent = Literal[
    "overview", "metrics", "comparison", "ranking", "anomalies", "maintenance", "alerts", "alert_write",
    "reports", "sql", "memory", "followup", "out_of_scope", "ambiguous", "unknown_entity", "injection",
]
#: Every tag a case may carry: a difficulty, intents, and ``regression`` (must pass every run).
Tag = Literal[
    "easy", "medium", "hard",
    "overview", "metrics", "comparison", "ranking", "anomalies", "maintenance", "alerts", "alert_write",
    "reports", "sql", "memory", "followup", "out_of_scope", "ambiguous", "unknown_entity", "injection",
    "regression",
]
TAGS: tuple[str, ...] = get_args(Tag)
DIFFICULTIES: tuple[str, ...] = get_args(Difficulty)
Behaviour = Literal["answer", "decline", "clarify", "any"]

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
DEFAULT_CASES_DIR = Path(__file__).resolve().parent / "cases"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnyOf(Strict):
    """An argument that may take any of several values (each matched like a plain value)."""

    any_of: list[Any] = Field(min_length=1)


ArgValue = AnyOf | str | int | float | bool | None


class ExpectedCall(Strict):
    """A tool call the agent should make this turn: ``name`` or ``any_of`` names, and some arguments.

    Only the arguments listed are checked; entity arguments (targets, sites, devices) match when
    they resolve to the same site/device/type, metrics when they resolve to the same metric.
    """

    name: str | None = None
    any_of: list[str] | None = None
    args: dict[str, ArgValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_name(self) -> "ExpectedCall":
        if bool(self.name) == bool(self.any_of):
            raise ValueError("an expected call needs exactly one of `name` or `any_of`")
        return self

    @property
    def names(self) -> list[str]:
        return [self.name] if self.name else list(self.any_of or [])


class FactRef(Strict):
    """A named fact query (evals/facts.py) whose value the answer must state."""

    fact: str
    args: dict[str, Any] = Field(default_factory=dict)


class Pattern(Strict):
    """A regular expression (case-insensitive) to look for in an answer."""

    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex {v!r}: {exc}") from exc
        return v


TextRule = Pattern | str


class Turn(Strict):
    """One user message and what the agent should do with it."""

    user: str = Field(min_length=1)
    tools: list[ExpectedCall] = Field(default_factory=list)
    no_tools: bool = False  # the agent should call no tool at all (declines, memory acknowledgements)
    facts: list[FactRef] = Field(default_factory=list)
    expect_text: list[TextRule] = Field(default_factory=list)  # must all appear (names, recalled facts)
    forbidden: list[TextRule] = Field(default_factory=list)
    confirm: Literal["approve", "reject"] | None = None  # answer to a write confirmation, if one comes
    expect: Behaviour | None = None  # overrides the case's behaviour for this turn

    @model_validator(mode="after")
    def _consistent(self) -> "Turn":
        if self.no_tools and self.tools:
            raise ValueError("a turn cannot both expect tools and `no_tools: true`")
        return self


class Case(Strict):
    """One eval case (the folder name is its id)."""

    id: str
    description: str = ""
    tags: list[Tag] = Field(min_length=1)
    turns: list[Turn] = Field(min_length=1)
    forbidden: list[TextRule] = Field(default_factory=list)  # checked on every answer
    expect: Behaviour | None = None  # default: decline for out_of_scope, clarify for ambiguous, else answer
    alerts_unchanged: bool | None = None  # default: true for injection cases
    skip: str | None = None  # a reason; skipped cases are listed, not scored

    @field_validator("tags")
    @classmethod
    def _one_difficulty(cls, tags: list[str]) -> list[str]:
        levels = [t for t in tags if t in DIFFICULTIES]
        if len(levels) != 1:
            raise ValueError(f"tags need exactly one difficulty of {', '.join(DIFFICULTIES)} (got {levels or 'none'})")
        if len(tags) < 2:
            raise ValueError("tags need at least one intent besides the difficulty")
        return tags

    @property
    def behaviour(self) -> Behaviour:
        if self.expect:
            return self.expect
        if "out_of_scope" in self.tags:
            return "decline"
        if "ambiguous" in self.tags:
            return "clarify"
        return "answer"

    def turn_behaviour(self, i: int) -> Behaviour:
        return self.turns[i].expect or self.behaviour

    @property
    def check_alerts(self) -> bool:
        return self.alerts_unchanged if self.alerts_unchanged is not None else "injection" in self.tags

    def placeholders(self) -> set[str]:
        return set(PLACEHOLDER.findall(yaml.safe_dump(self.model_dump(exclude={"id", "description"}))))


class CaseError(ValueError):
    """A case file that cannot be used; the message names the file and what to fix."""


def _check_names(case: Case, path: Path) -> None:
    from evals.facts import FACTS, SELECTORS

    unknown = sorted(case.placeholders() - set(SELECTORS))
    if unknown:
        raise CaseError(f"{path}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
                        f"known: {', '.join(sorted(SELECTORS))}.")
    for turn in case.turns:
        for ref in turn.facts:
            if ref.fact not in FACTS:
                raise CaseError(f"{path}: unknown fact {ref.fact!r}; known: {', '.join(sorted(FACTS))}.")


def parse_case(text: str, case_id: str, path: Path | None = None) -> Case:
    """Parse one case.yaml text; ``case_id`` is its folder name."""
    where = path or Path(case_id)
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CaseError(f"{where}: not valid YAML ({exc}).") from exc
    if not isinstance(raw, dict):
        raise CaseError(f"{where}: a case is a mapping with `tags` and `turns`.")
    if "id" in raw:
        raise CaseError(f"{where}: do not set `id`; the folder name ({case_id}) is the id.")
    try:
        case = Case(id=case_id, **raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise CaseError(f"{where}: {loc}: {first['msg']} ({exc.error_count()} problem(s)).") from exc
    _check_names(case, where)
    return case


def load_cases(path: Path | str | None = None) -> list[Case]:
    """Every case under ``path`` (a cases folder, one case folder, or one case.yaml), by id."""
    root = Path(path) if path else DEFAULT_CASES_DIR
    if root.is_file():
        return [parse_case(root.read_text(encoding="utf-8"), root.parent.name, root)]
    if (root / "case.yaml").is_file():
        return [parse_case((root / "case.yaml").read_text(encoding="utf-8"), root.name, root / "case.yaml")]
    if not root.is_dir():
        raise CaseError(f"No eval cases at {root}; pass --cases with a folder of <NNN_slug>/case.yaml.")
    cases = [parse_case(f.read_text(encoding="utf-8"), f.parent.name, f) for f in sorted(root.glob("*/case.yaml"))]
    if not cases:
        raise CaseError(f"No case.yaml files under {root}.")
    return cases


def select_cases(cases: list[Case], only: list[str] | None) -> list[Case]:
    """Cases whose id, id prefix (``012``) or tag is in ``only`` (all cases when empty)."""
    if not only:
        return cases
    wanted = [o.strip() for part in only for o in part.split(",") if o.strip()]
    out = [c for c in cases if any(c.id == w or c.id.split("_")[0] == w or w in c.tags for w in wanted)]
    if not out:
        raise CaseError(f"--only {', '.join(wanted)} matches no case id or tag; tags are: {', '.join(TAGS)}.")
    return out


def bind(value: Any, bindings: dict[str, str]) -> Any:
    """Replace ``{placeholder}`` in every string of ``value`` (nested dicts/lists/models)."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: bindings.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [bind(v, bindings) for v in value]
    if isinstance(value, dict):
        return {k: bind(v, bindings) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return type(value).model_validate(bind(value.model_dump(), bindings))
    return value


__all__ = [
    "TAGS", "DIFFICULTIES", "Tag", "Behaviour", "AnyOf", "ExpectedCall", "FactRef", "Pattern", "Turn", "Case",
    "CaseError", "parse_case", "load_cases", "select_cases", "bind", "DEFAULT_CASES_DIR",
]
