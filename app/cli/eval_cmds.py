"""``homepot-ai eval``: run the scripted eval cases against a model and print the scorecard.

The runner builds its own seeded eval fleet in a temporary folder (nothing of the user's store
is touched), runs every case through the same agent entry point as ``homepot-ai ask``, prints a
table (overall and by tag) and writes the JSON scorecard. ``--compare A.json B.json`` shows
what got better and what got worse between two runs. Progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _say(msg: str) -> None:
    click.echo(msg, err=True)


@click.command(name="eval")
@click.option("--model", "model", default="offline", show_default=True, metavar="offline|ollama[:NAME]|auto",
              help="Model provider to evaluate.")
@click.option("--cases", "cases_path", type=click.Path(path_type=Path), default=None,
              help="Folder of <NNN_slug>/case.yaml (default: evals/cases).")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None, help="Write the JSON scorecard here.")
@click.option("--only", "only", multiple=True, help="Case id, id number (012) or tag; repeat or comma-separate.")
@click.option("--iterations", type=click.IntRange(1, 50), default=1, show_default=True,
              help="Run every case this many times (flaky cases are listed).")
@click.option("--judge", "judge_spec", default=None, metavar="ollama[:NAME]",
              help="Grade free-text quality with an Ollama model (HOMEPOT_AI_JUDGE_MODEL); skipped when unavailable.")
@click.option("--compare", "compare_files", nargs=2, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Compare two scorecard JSON files (A then B) instead of running.")
@click.option("--json", "json_", is_flag=True, help="Print the JSON scorecard (or comparison) on stdout instead of the table.")
@click.option("--quiet", is_flag=True, help="No per-case progress on stderr.")
def eval_(model: str, cases_path: Path | None, out: Path | None, only: tuple[str, ...], iterations: int,
          judge_spec: str | None, compare_files: tuple[Path, Path] | None, json_: bool, quiet: bool) -> None:
    """Score the agent on the scripted eval cases (tool choice, arguments, facts, grounding, safety).

    \b
    Examples:
      homepot-ai eval --model offline --out evals/last.json
      homepot-ai eval --only regression --only injection
      homepot-ai eval --model ollama:qwen2.5 --judge ollama:llama3.2
      homepot-ai eval --compare before.json after.json
    """
    from app.errors import UserError

    if compare_files:
        from evals.scorecard import compare, render_compare

        a, b = (_load_card(p) for p in compare_files)
        diff = compare(a, b)
        click.echo(json.dumps(diff, indent=2) if json_ else render_compare(diff, compare_files[0].name, compare_files[1].name))
        return

    from agent.providers import ProviderError, UnknownModelSpec, parse_model_spec
    from evals.case_model import CaseError, load_cases, select_cases
    from evals.runner import run_suite
    from evals.scorecard import render

    try:
        parse_model_spec(model)
        cases = select_cases(load_cases(cases_path), list(only))
    except (CaseError, UnknownModelSpec) as exc:
        raise UserError(str(exc)) from exc
    judge = None
    note = None
    if judge_spec:
        from evals.judge import make_judge

        judge, note = make_judge(judge_spec)
        if note:
            _say(note)
    log = (lambda _m: None) if quiet else _say
    try:
        card = run_suite(cases, model=model, iterations=iterations, judge=judge, log=log)
    except ProviderError as exc:
        raise UserError(str(exc)) from exc
    if note:
        card["judge_note"] = note
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(card, indent=2, default=str), encoding="utf-8")
        _say(f"scorecard written to {out}")
    click.echo(json.dumps(card, indent=2, default=str) if json_ else render(card))


def _load_card(path: Path) -> dict:
    from app.errors import UserError

    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a scorecard JSON file ({exc}).") from exc
    if not isinstance(card, dict) or "details" not in card:
        raise UserError(f"{path} is not a scorecard written by `homepot-ai eval --out` (no `details`).")
    return card


if __name__ == "__main__":  # pragma: no cover
    sys.exit(eval_())
