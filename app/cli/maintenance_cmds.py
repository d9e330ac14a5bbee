"""``homepot-ai risk``: which devices to service first, or one device's failure risk and why."""

from __future__ import annotations

import json

import click

from app.errors import UserError


def _fmt_days(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "-"
    return ">10 y" if v >= 3650 else f"{v:.0f} d"


@click.command("risk")
@click.option("--device", "device", default=None, help="One device: public id (DEVICE-...), name or numeric id.")
@click.option("--top", default=10, show_default=True, help="How many devices to list.")
@click.option("--horizon", type=click.Choice(["7", "30"]), default="30", show_default=True,
              help="Rank by P(failure within this many days).")
@click.option("--refit", is_flag=True, help="Fit a new model on the fleet's history instead of reusing one.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def risk(device: str | None, top: int, horizon: str, refit: bool, as_json: bool) -> None:
    """Failure risk: P(failure within 7 / 30 days), remaining useful life and the reasons.

    Uses stored predictions when they are fresh, else the saved model, else fits one (seconds to a
    minute on a large fleet). Progress goes to stderr.

    \b
    Examples:
      homepot-ai risk --top 5
      homepot-ai risk --device DEVICE-1A2B-3C4D-5E6F --json
      homepot-ai risk --refit --horizon 7
    """
    from app.context import settings_from_env, store_from_settings
    from tools.maintenance.fleet import device_risk, rank_fleet
    from tools.maintenance.survival import RiskInputError

    settings = settings_from_env()
    store = store_from_settings(settings)
    now = settings.now()
    click.echo("scoring the fleet ...", err=True)
    try:
        if device:
            row = device_risk(store, now, device, refit=refit)
            if row is None:
                raise UserError(f"No device {device!r}; list devices with `homepot-ai risk --top 50`.")
            if as_json:
                click.echo(json.dumps(row, default=str))
                return
            click.echo(f"{row.get('name') or row['public_id']} ({row['public_id']}, {row.get('device_type')}, "
                       f"{row.get('site_name')})")
            click.echo(f"  P(fail within 7 days)  {100 * row['p_fail_7d']:.1f}%")
            click.echo(f"  P(fail within 30 days) {100 * row['p_fail_30d']:.1f}%")
            click.echo(f"  remaining useful life  {_fmt_days(row['rul_median_days'])} (80% interval "
                       f"{_fmt_days(row['rul_low_days'])} to {_fmt_days(row['rul_high_days'])})")
            for f in row.get("factors") or []:
                click.echo(f"  - {f}")
            click.echo(f"  ({row['model']}; {row['source']})")
            return
        ranked = rank_fleet(store, now, top=top, horizon=int(horizon), refit=refit)
    except RiskInputError as exc:
        raise UserError(str(exc)) from exc
    if ranked.empty:
        raise UserError("No devices to score; run `homepot-ai simulate` or `homepot-ai import` first.")
    if as_json:
        cols = ["rank", "public_id", "name", "device_type", "site_name", "p_fail_7d", "p_fail_30d",
                "rul_median_days", "rul_low_days", "rul_high_days", "factors", "model"]
        click.echo(json.dumps({"source": ranked.attrs.get("source"), "horizon_days": int(horizon),
                               "devices": ranked.reindex(columns=cols).to_dict("records")}, default=str))
        return
    click.echo(f"{'#':>2} {'device':<34} {'P7':>6} {'P30':>6} {'RUL':>7}  why")
    for r in ranked.itertuples():
        why = "; ".join((r.factors or [])[:2])
        click.echo(f"{r.rank:>2} {str(r.name or r.public_id)[:34]:<34} {100 * r.p_fail_7d:>5.1f}% "
                   f"{100 * r.p_fail_30d:>5.1f}% {_fmt_days(r.rul_median_days):>7}  {why}")
    click.echo(f"({ranked.attrs.get('source')})", err=True)
