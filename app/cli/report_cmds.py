"""``homepot-ai report``: render a daily / weekly / monthly report through the same tool the agent uses."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("period", type=click.Choice(["daily", "weekly", "monthly"]), default="daily")
@click.option("--site", default=None, help="Site name or SITE- id; default: the whole fleet.")
@click.option("--no-charts", is_flag=True, help="Skip the PNG charts.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also copy the Markdown to this file.")
@click.option("--json", "json_", is_flag=True, help="Print one JSON object instead of the Markdown.")
def report(period: str, site: str | None, no_charts: bool, out: Path | None, json_: bool) -> None:
    """Render an operations report and print it (saved under the data directory too).

    \b
    Examples:
      homepot-ai report weekly
      homepot-ai report daily --site "Camden High St" --out camden.md
    """
    from app.context import tool_context
    from tools.registry import call_tool

    ctx = tool_context(surface="cli")
    result = call_tool(ctx, "render_report", {"period": period, "site": site, "charts": not no_charts})
    if result.status == "error":
        raise click.ClickException(result.error or "the report could not be rendered")
    if result.status == "no_data":
        raise click.ClickException(result.summary or "there is no data to report on")
    data = result.data or {}
    path = Path(data["path"])
    markdown = path.read_text(encoding="utf-8")
    if out is not None:
        out.write_text(markdown, encoding="utf-8")
    if json_:
        click.echo(json.dumps({"summary": result.summary, "path": str(path), "figures": data.get("figures", []),
                               "report_id": data.get("report_id")}))
    else:
        click.echo(markdown)
        click.echo(f"\n{result.summary}", err=True)
