"""``homepot-ai import FILE...``: validated, idempotent import of metric files.

Exit code 0 when every row was stored or was already there; 1 when any row was rejected or a
file could not be read (the summary says which and why).
"""

from __future__ import annotations

import json
import sys

import click


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False, writable=True),
              help="Write the rejected rows to this CSV (file, line, code, reason, raw).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--provenance", default="real", show_default=True,
              type=click.Choice(["real", "controlled", "simulated"]),
              help="Provenance recorded on rows whose file has no provenance column.")
@click.option("--show", default=20, show_default=True, help="How many rejected rows to list on stderr.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def import_(files: tuple[str, ...], errors_path: str | None, as_json: bool, provenance: str, show: int,
            no_progress: bool) -> None:
    """Import device metrics from CSV or JSONL files, wide (HOMEPOT rows) or long
    (device_id,timestamp,metric,value).

    \b
    Examples:
      homepot-ai import metrics.csv
      homepot-ai import day1.jsonl day2.jsonl --errors rejected.csv --json
    """
    from app.context import settings_from_env, store_from_settings
    from tools.store.ingest import REASONS, import_files, write_errors_csv

    settings = settings_from_env()
    store = store_from_settings(settings)
    report = import_files(store, list(files), now=settings.now(), progress=not no_progress and not as_json,
                          provenance=provenance)
    if errors_path:
        write_errors_csv(report, errors_path)
    if as_json:
        click.echo(json.dumps(report.summary_dict(), default=str))
    else:
        for f in report.files:
            for w in f.warnings:
                click.echo(f"Warning: {w}", err=True)
            if f.error:
                click.echo(f"Error: {f.error}", err=True)
        for p in report.problems[:show]:
            click.echo(f"{p.file}:{p.line}: {p.reason}", err=True)
        if len(report.problems) > show or report.problems_not_listed:
            more = len(report.problems) - show + report.problems_not_listed
            click.echo(f"... and {more} more rejected rows"
                       + ("" if errors_path else " (use --errors FILE to get them all)"), err=True)
        click.echo(_summary_text(report, REASONS))
        if errors_path:
            click.echo(f"Rejected rows written to {errors_path}")
    sys.exit(0 if report.ok else 1)


def _summary_text(report, reasons: dict[str, str]) -> str:
    rate = f" ({report.values_stored / report.seconds:,.0f} values/s)" if report.seconds > 0 and report.values_stored else ""
    lines = [
        f"Read {report.rows_read:,} rows from {len(report.files)} file(s) in {report.seconds:.1f} s: "
        f"stored {report.rows_stored:,} ({report.values_stored:,} metric values{rate}), "
        f"skipped {report.duplicates:,} duplicates, rejected {report.n_rejected:,}."
    ]
    for code, n in sorted(report.rejected.items(), key=lambda kv: -kv[1]):
        lines.append(f"  rejected {n:,} x {reasons.get(code, code)}")
    failed = report.failed_files
    if failed:
        lines.append(f"  {len(failed)} file(s) could not be read")
    return "\n".join(lines)
