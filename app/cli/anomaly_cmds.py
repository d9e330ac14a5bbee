"""``homepot-ai scan``: score fresh metrics incrementally and optionally raise alerts."""

from __future__ import annotations

import json
import sys

import click


@click.command()
@click.option("--since", default=None, help="Re-scan from this time (ISO, naive UTC) as a batch instead of incrementally.")
@click.option("--alerts", "with_alerts", is_flag=True, help="Also write HOMEPOT alerts for medium+ findings.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
def scan(since: str | None, with_alerts: bool, as_json: bool) -> None:
    """Find anomalies in metrics that arrived since the last scan.

    \b
    Examples:
      homepot-ai scan                      # new points only (state kept between runs)
      homepot-ai scan --since 2024-05-01   # batch re-scan of a period
      homepot-ai scan --alerts --json
    """
    from app.context import settings_from_env, store_from_settings
    from app.errors import UserError
    from tools.anomaly.service import detect_anomalies, raise_alerts, scan_new
    from tools.timewindow import to_naive_utc

    settings = settings_from_env()
    store = store_from_settings(settings)
    now = settings.now()
    if since:
        try:
            start = to_naive_utc(since)
        except ValueError as exc:
            raise UserError(f"--since {since!r} is not a date/time like 2024-05-01 or 2024-05-01T08:00.") from exc
        findings = detect_anomalies(store, start=start, end=now)
    else:
        findings = scan_new(store, now=now)
    raised = raise_alerts(store, findings) if with_alerts else 0
    if as_json:
        sys.stdout.write(json.dumps({"findings": [f.as_dict() for f in findings], "alerts_raised": raised},
                                    default=str) + "\n")
        return
    if not findings:
        click.echo("No anomalies in the new data.")
        return
    for f in sorted(findings, key=lambda f: -f.score):
        click.echo(f"[{f.severity:8s}] {f.start:%Y-%m-%d %H:%M} {f.public_id or f.device_id}  {f.kind:18s} {f.explanation}")
    if with_alerts:
        click.echo(f"{raised} alert(s) raised.")
