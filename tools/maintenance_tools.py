"""Maintenance tools for the agent: one device's failure risk, and the fleet ranked by risk.

Both read fresh predictions from ``ai_predictions`` when there are some (made in the last few
hours), else score the fleet with the saved model, else fit one on the fleet's history (see
``tools/maintenance/fleet.py``). Probabilities are calibrated survival estimates; the factors
are sentences meant to be quoted to the user.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tools.registry import ToolContext, register
from tools.results import ToolResult
from tools.scopes import ScopeArgs, friendly_errors, resolve_device, resolve_scope

MAX_TOP = 50


def _row(r: dict) -> dict:
    keep = {"name": "name", "public_id": "device", "site_name": "site", "device_type": "device_type",
            "p_fail_7d": "p_fail_7d", "p_fail_30d": "p_fail_30d", "rul_median_days": "median_rul_days",
            "rul_low_days": "rul_low_days", "rul_high_days": "rul_high_days", "factors": "factors", "model": "model"}
    out = {new: r.get(old) for old, new in keep.items()}
    for k in ("p_fail_7d", "p_fail_30d"):
        if out[k] is not None:
            out[k] = round(float(out[k]), 3)
    return out


class MaintenanceRiskArgs(BaseModel):
    device: str = Field(description="Device name (partial is fine) or DEVICE- id.")
    refit: bool = Field(default=False, description="Fit a new model first (slow); only when the user asks.")


@register(group="maintenance")
@friendly_errors
def maintenance_risk(ctx: ToolContext, args: MaintenanceRiskArgs) -> ToolResult:
    """Failure risk of one device: P(failure within 7 days), P(failure within 30 days), the median
    remaining useful life in days with an 80% interval, and the top reasons in plain words.

    Use it for "will Camden Till 2 fail soon?", "why is the Leeds gateway at risk?", "how long
    until POS-03 needs servicing?". Probabilities are 0-1 (say them as percentages); RUL is in days
    (3650 means "more than 10 years"). Quote the factors as the reasons.
    """
    from tools.maintenance.fleet import device_risk

    dev = resolve_device(ctx.store, args.device)
    row = device_risk(ctx.store, ctx.now(), int(dev["id"]), refit=args.refit)
    if row is None:
        return ToolResult.empty("maintenance_risk", f"No risk estimate for {dev['name']}: no metrics history yet.")
    data = _row(row)
    s = (f"{data['name']}: {100 * data['p_fail_7d']:.0f}% chance of failure within 7 days, "
         f"{100 * data['p_fail_30d']:.0f}% within 30 days; median remaining life {data['median_rul_days']:.0f} days.")
    return ToolResult(tool="maintenance_risk", data=data, rows=1, summary=s,
                      query=f"failure-risk model ({row.get('source')})")


class FleetRiskRankingArgs(ScopeArgs):
    top_n: int = Field(default=10, ge=1, le=MAX_TOP, description="How many devices to return, riskiest first.")
    horizon_days: Literal[7, 30] = Field(default=30, description="Rank by P(failure within 7 or 30 days).")
    refit: bool = Field(default=False, description="Fit a new model first (slow); only when the user asks.")


@register(group="maintenance")
@friendly_errors
def fleet_risk_ranking(ctx: ToolContext, args: FleetRiskRankingArgs) -> ToolResult:
    """The devices most likely to fail in a scope (the fleet, a site, a device type), ranked by
    P(failure within ``horizon_days``) (7 or 30, default 30), with remaining useful life in days
    and the reasons in plain words: which devices to service first.

    Use it for "which devices need maintenance in the next 30 days?", "top 5 devices at risk this
    week" (horizon_days=7), "riskiest devices at Camden" (scope=site, target=camden).
    Probabilities are 0-1 (say them as percentages).
    """
    from tools.maintenance.fleet import rank_fleet

    scope = resolve_scope(ctx.store, args.scope, args.target)
    ids = None if scope.is_fleet else scope.device_ids
    ranked = rank_fleet(ctx.store, ctx.now(), top=args.top_n, horizon=args.horizon_days, refit=args.refit,
                        device_ids=ids)
    if ranked.empty:
        return ToolResult.empty("fleet_risk_ranking", f"No devices with metrics to score for {scope.label}.")
    rows = [_row(r) for r in ranked.to_dict("records")]
    col = f"p_fail_{args.horizon_days}d"
    first = rows[0]
    s = (f"Riskiest in {scope.label}: {first['name']} at {100 * first[col]:.0f}% within {args.horizon_days} days"
         f"{' (' + first['factors'][0] + ')' if first.get('factors') else ''}.")
    return ToolResult(tool="fleet_risk_ranking", data=rows, rows=len(rows), summary=s,
                      query=f"failure-risk model ({ranked.attrs.get('source')})")
