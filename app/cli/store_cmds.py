"""``homepot-ai init`` (create or upgrade the store) and ``homepot-ai status`` (the fleet at a glance)."""

from __future__ import annotations

import json

import click


def index_runbooks(settings) -> str:
    """Embed the runbooks into long-term memory now, so the first memory search of a chat does not
    pay for it (3-20 s on a fresh data dir); cheap when nothing changed. One line either way."""
    import time

    started = time.perf_counter()
    try:
        from memory.long_term import LongTermMemory

        report = LongTermMemory.from_settings(settings).ensure_runbooks()
    except Exception as exc:  # noqa: BLE001 - memory is optional for the store; say why and go on
        return f"not indexed ({type(exc).__name__}: {exc})"
    files = len(report.added) + len(report.updated) + len(report.unchanged)
    what = f"indexed ({report.chunks} chunks)" if report.changed else "already indexed"
    return f"{files} files {what} in {time.perf_counter() - started:.1f}s"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def init(as_json: bool) -> None:
    """Create the store (or bring its schema up to date) and say where it is."""
    from app.context import settings_from_env, store_from_settings
    from tools.store.migrations import applied_migrations, migrate

    settings = settings_from_env()
    store = store_from_settings(settings, migrate=False)
    applied_now = migrate(store)
    all_applied = applied_migrations(store)
    runbooks = index_runbooks(settings)
    info = {
        "runbooks": runbooks,
        "database": store.url,
        "backend": store.dialect,
        "timescaledb": store.has_timescale,
        "data_dir": str(settings.data_dir.resolve()),
        "applied_now": applied_now,
        "migrations": all_applied,
    }
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"Store      {info['database']} ({store.dialect}{', TimescaleDB' if store.has_timescale else ''})")
    click.echo(f"Data dir   {info['data_dir']}")
    if applied_now:
        click.echo(f"Applied    {len(applied_now)} migration(s): {', '.join(applied_now)}")
    else:
        click.echo(f"Up to date ({len(all_applied)} migrations applied: {', '.join(all_applied)})")
    click.echo(f"Runbooks   {runbooks}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(as_json: bool) -> None:
    """Sites, devices by type, health and connectivity, data range and freshness, open alerts."""
    from app.context import settings_from_env, store_from_settings
    from tools.status import fleet_status, render_status

    settings = settings_from_env()
    store = store_from_settings(settings)
    result = fleet_status(store, settings.now(), stale_after_s=int(settings.get("HOMEPOT_AI_STALE_AFTER_S")))
    if as_json:
        click.echo(json.dumps(result.model_dump(mode="json") | {"open_alerts_total": result.open_alerts_total}))
    else:
        click.echo(render_status(result))
