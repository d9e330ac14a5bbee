"""Templated answers: direct replies, and answers written from tool results.

The rule that keeps the offline model grounded: **it never computes a figure**. Every number
in an answer is copied verbatim from a tool result (the tool's ``summary`` sentence, which the
tools write from their own rounded values, and the rows of ``data``). The templates in
``prompts/offline/*.md`` add words around them; example questions are quoted so that the
grounding check reads their digits as examples. Each answer ends with what to ask next.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from agent.offline.catalog import Catalog

_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts" / "offline"
_SECTION = re.compile(r"^## +(\S+)\s*$", re.M)


@lru_cache(maxsize=8)
def templates(name: str) -> dict[str, str]:
    """The ``## key`` sections of ``prompts/offline/<name>.md`` (via the prompts loader when present)."""
    text = None
    try:  # the prompts package's loader, when it has one
        from prompts import load_prompt  # type: ignore[attr-defined]

        text = load_prompt(f"offline/{name}")
    except Exception:
        text = None
    if not text:
        text = (_PROMPTS_DIR / f"{name}.md").read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def fill(file: str, key: str, **fields: Any) -> str:
    """One template section with its fields filled (missing fields read as empty)."""
    tpl = templates(file)[key]
    return tpl.format_map(_Blank(fields))


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def quote_list(items: list[str]) -> str:
    return ", ".join(f'"{q}"' for q in items if q)


# --------------------------------------------------------------------------- example questions


def example_questions(catalog: Catalog | None, k: int = 4) -> list[str]:
    """Useful "try asking" questions that name this fleet's own sites and devices."""
    site = _short_site(catalog, 0)
    other = _short_site(catalog, 1)
    out = ["what's the fleet status?", "how many devices are offline?"]
    if site:
        out.append(f"average CPU at {site} yesterday")
    if site and other:
        out.append(f"compare the error rate of {site} and {other} over the last 7 days")
    out += ["which 5 devices had the most anomalies this week?", "which devices need maintenance in the next 30 days?",
            "show open alerts", "send me the weekly report"]
    return out[:k]


def _short_site(catalog: Catalog | None, i: int) -> str | None:
    if not catalog or len(catalog.sites) <= i:
        return None
    return catalog.sites[i].name


# --------------------------------------------------------------------------- direct replies


def direct_reply(key: str, fields: dict[str, Any], catalog: Catalog | None) -> str:
    """A reply that needs no tool (greeting, help, decline, clarification, memory ack)."""
    f = dict(fields)
    if key == "unknown_entity":  # close matches, quoted (names are not figures)
        f["did_you_mean"] = f"Did you mean {quote_list(list(f.pop('options', None) or []))}? " if f.get("options") else ""
    if isinstance(f.get("options"), list):
        f["options"] = ", ".join(f["options"][:8]) + (" ..." if len(f["options"]) > 8 else "")
    f.setdefault("examples", quote_list(example_questions(catalog)))
    if catalog is not None:
        f.setdefault("sites", ", ".join(s.name for s in catalog.sites[:8]) or "none stored yet")
        f.setdefault("metrics", ", ".join(m.replace("_", " ") for m in catalog.metrics[:14]))
    return fill("replies", key, **f)


# --------------------------------------------------------------------------- answers from tool results


def parse_tool_content(content: Any) -> dict[str, Any]:
    """A ToolMessage's content as a ToolResult-shaped dict, even when cut short or plain text."""
    if isinstance(content, dict):
        return content
    if isinstance(content, list):  # content blocks
        content = " ".join(str(c.get("text", c)) if isinstance(c, dict) else str(c) for c in content)
    text = str(content or "").strip()
    if text.startswith("{") or text.startswith("["):
        try:  # raw_decode: the graph may append a hint line after the JSON
            obj, _ = json.JSONDecoder().raw_decode(text)
            if isinstance(obj, dict) and ("status" in obj or "summary" in obj or "data" in obj):
                return obj
            return {"status": "ok", "data": obj}
        except ValueError:
            pass
    fields: dict[str, Any] = {}
    for key in ("status", "summary", "error", "title", "path"):  # a result cut short: keep what can be read
        m = re.search(rf'"{key}"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
        if m:
            fields[key] = json.loads(f'"{m.group(1)}"')
    if fields.get("summary") or fields.get("error"):
        return {"status": fields.get("status", "ok"), **fields, "truncated": True}
    if fields.get("title"):  # e.g. a report whose Markdown filled the message: say what it is and where
        counts = {k: int(m.group(1)) for k in ("devices", "offline", "open_alerts", "anomalies", "at_risk")
                  if (m := re.search(rf'"{k}"\s*:\s*(-?\d+)[,}}]', text))}
        data = {"title": fields["title"], "path": fields.get("path"), **counts}
        return {"status": fields.get("status", "ok"), "data": data, "truncated": True}
    if text.startswith("{"):
        return {"status": fields.get("status", "ok"), "summary": "", "truncated": True}
    if text.lower().startswith("error") or "did not confirm" in text:
        return {"status": "error", "error": re.sub(r"^error:\s*", "", text, flags=re.I)}
    return {"status": "ok", "summary": text}


#: Columns shown per tool, in order (only those present are used).
_COLUMNS: dict[str, list[str]] = {
    "list_devices": ["name", "device_type", "site", "health_state", "connectivity", "last_heartbeat"],
    "list_alerts": ["id", "severity", "status", "device", "device_name", "site", "title", "timestamp"],
    "query_metric": ["bucket", "device", "site", "device_type", "value", "unit", "samples"],
    "find_anomalies": ["id", "device", "device_name", "site", "anomalies", "count", "metric", "kind", "severity", "score", "start"],
    "fleet_risk_ranking": ["name", "site", "device_type", "p_fail_7d", "p_fail_30d", "median_rul_days"],
    "run_sql": [],
}
_MAX_ROWS = 10


_TS_FRACTION = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})\.\d+$")


def _cell(value: Any) -> str:
    """A value as shown: floats to the tools' display precision (4 decimals below 1, else 2),
    which the grounding check accepts as the same figure; timestamps without microseconds."""
    if value is None:
        return "-"
    if isinstance(value, float):
        shown = round(value, 4) if abs(value) < 1 else round(value, 2)
        return str(int(shown)) if shown == int(shown) else repr(shown)
    text = _TS_FRACTION.sub(r"\1", str(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _table(tool: str, rows: list[Any]) -> str:
    """A small Markdown table of result rows, values copied verbatim."""
    dict_rows = [r for r in rows if isinstance(r, dict)]
    if not dict_rows:
        return ""
    wanted = _COLUMNS.get(tool) or []
    keys = [k for k in wanted if any(k in r for r in dict_rows)]
    if not keys:
        keys = [k for k, v in dict_rows[0].items() if not isinstance(v, (dict, list))][:6]
    if "unit" in keys and not any(r.get("unit") for r in dict_rows):
        keys.remove("unit")
    head = "| " + " | ".join(k.replace("_", " ") for k in keys) + " |"
    sep = "|" + "---|" * len(keys)
    body = ["| " + " | ".join(_cell(r.get(k)).replace("|", "/") for k in keys) + " |" for r in dict_rows[:_MAX_ROWS]]
    return "\n".join([head, sep, *body])


def _fix_for(error: str) -> str:
    low = error.lower()
    if "metric" in low:
        return fill("answers", "fix_metric")
    if "window" in low or "iso" in low or "starts" in low:
        return fill("answers", "fix_window")
    if any(w in low for w in ("site", "device", "scope", "matches", "no alert")):
        return fill("answers", "fix_scope")
    return fill("answers", "fix_generic")


def _metric_names(rows: list[Any]) -> list[str]:
    """Every metric named by findings (their own metric and the signals that moved with it), in order."""
    out: list[str] = []
    for r in rows:
        if not isinstance(r, dict):
            continue
        extra = r.get("metrics")
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError:
                extra = [extra]
        for m in [r.get("metric"), *(extra if isinstance(extra, list) else [])]:
            if isinstance(m, str) and m and m not in out:
                out.append(m)
    return out


def _details(tool: str, result: dict[str, Any], show_n: int | None = None) -> str:
    data = result.get("data")
    if tool == "fleet_overview" and isinstance(data, dict):
        parts = []
        if data.get("by_health"):
            parts.append("By health: " + ", ".join(f"{k} {v}" for k, v in data["by_health"].items()))
        if data.get("by_type"):
            parts.append("By type: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in data["by_type"].items()))
        if data.get("stale_devices"):
            parts.append("Stale data: " + ", ".join(str(d.get("name")) for d in data["stale_devices"][:_MAX_ROWS]))
        return "\n".join(parts)
    if tool == "compare_metric":
        return ""
    if tool == "memory_search" and isinstance(data, list):  # the snippets themselves, each with its source
        return "\n".join(f"- [{r.get('source') or r.get('collection')}] {_snippet(str(r.get('text', '')))}"
                         for r in data[:3] if isinstance(r, dict))
    if tool == "render_report" and isinstance(data, dict):
        return fill("answers", "report_path", path=data.get("path") or "the reports folder")
    if tool == "maintenance_risk" and isinstance(data, dict):  # the model's reasons, quoted
        factors = [str(f) for f in data.get("factors") or []][:3]
        interval = (f"Remaining useful life: median {_cell(data.get('median_rul_days'))} days "
                    f"(likely between {_cell(data.get('rul_low_days'))} and {_cell(data.get('rul_high_days'))} days).")
        return "\n".join([interval] + ([f"Reasons: {'; '.join(f.rstrip('.') for f in factors)}."] if factors else []))
    if tool == "fleet_risk_ranking" and isinstance(data, list) and data:
        top = data[0].get("factors") if isinstance(data[0], dict) else None
        table = _table(tool, data)
        return table + (f"\nWhy {data[0].get('name')}: {'; '.join(str(f).rstrip('.') for f in top[:3])}." if top else "")
    if tool == "explain_anomaly" and isinstance(data, dict):
        text = fill("answers", "explain_details", **{k: _cell(v) for k, v in data.items()})
        moved = [m for m in _metric_names([data]) if m != data.get("metric")]
        return text + ("\n" + fill("answers", "moved_with", metrics=", ".join(moved)) if moved else "")
    if tool == "find_anomalies" and isinstance(data, list) and data and show_n is None:
        table = _table(tool, data)
        names = _metric_names(data)
        return table + ("\n" + fill("answers", "signals", metrics=", ".join(names)) if len(names) > 1 else "")
    if show_n and isinstance(data, list) and len(data) > show_n:  # "which 5 ...": the 5, and any tied with the 5th
        key = next((k for k in ("anomalies", "count", "value") if isinstance(data[0], dict) and k in data[0]), None)
        cut = data[show_n - 1].get(key) if key and isinstance(data[show_n - 1], dict) else None
        shown = data[:show_n] + [r for r in data[show_n:] if cut is not None and isinstance(r, dict) and r.get(key) == cut]
        note = "\n" + fill("answers", "ties", n=show_n) if len(shown) > show_n else ""
        return _table(tool, shown) + note
    if isinstance(data, list) and len(data) > 1 or (isinstance(data, list) and tool in ("list_alerts", "list_devices", "run_sql")):
        return _table(tool, data)
    if isinstance(data, dict):
        for key in ("rows", "items", "devices", "anomalies", "ranking", "findings", "results"):
            if isinstance(data.get(key), list) and data[key]:
                return _table(tool, data[key])
    return ""


def _snippet(text: str, limit: int = 400) -> str:
    """One memory snippet on one line, cut at a word boundary."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " ..."


def _sentence(tool: str, result: dict[str, Any]) -> str:
    summary = result.get("summary")
    if summary:
        return str(summary).strip()
    data = result.get("data")
    if isinstance(data, dict) and data.get("title"):
        facts = ", ".join(f"{k.replace('_', ' ')} {data[k]}" for k in ("devices", "offline", "open_alerts", "anomalies", "at_risk")
                          if isinstance(data.get(k), int))
        return fill("answers", "report", title=data["title"], facts=f" ({facts})" if facts else "")
    rows = result.get("rows")
    return f"{tool} returned {rows} row{'s' if rows != 1 else ''}." if rows is not None else f"{tool} finished."


_SPOKEN = {"cpu_percent": "CPU", "memory_percent": "memory", "disk_percent": "disk usage",
           "network_latency_ms": "latency", "transaction_count": "transactions", "transaction_volume": "sales",
           "temperature_celsius": "temperature", "active_connections": "connections"}


def spoken_metric(metric: str) -> str:
    """How a metric reads in a question ("network_latency_ms" -> "latency")."""
    return _SPOKEN.get(metric, metric.replace("_", " "))


def suggestions(tool: str, args: dict[str, Any], result: dict[str, Any], catalog: Catalog | None) -> list[str]:
    """What to ask next, built from the scope of this answer."""
    site = args.get("target") if args.get("scope") == "site" else args.get("site") or _short_site(catalog, 0)
    other = _short_site(catalog, 1) if catalog and site != _short_site(catalog, 1) else _short_site(catalog, 0)
    metric = spoken_metric(str(args.get("metric") or "error_rate"))
    device = None
    data = result.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        device = data[0].get("device") or data[0].get("device_name") or data[0].get("name")
    if isinstance(device, str) and len(device) > 60:
        device = None
    table: dict[str, list[str]] = {
        "fleet_overview": ["which devices are offline?", "show open alerts", "which devices need maintenance in the next 30 days?"],
        "list_devices": ["what's the fleet status?", "show open alerts", f"why is {device} flagged?" if device else "which devices had anomalies today?"],
        "query_metric": [f"hourly {metric} at {site} today" if site else f"hourly {metric} today",
                         f"compare the {metric} of {site} and {other} over the last 7 days" if site and other else "",
                         f"which 5 devices had the highest {metric} this week?"],
        "compare_metric": [f"hourly {metric} at {site} today" if site else "", f"which 5 devices had the highest {metric} this week?", "which devices had anomalies this week?"],
        "find_anomalies": [f"why is {device} flagged?" if device else "show open alerts", "which devices need maintenance in the next 30 days?"],
        "explain_anomaly": ["show open alerts for this device" if not args.get("device") else f"show open alerts for {args['device']}",
                            f"what is the maintenance risk of {args.get('device')}?" if args.get("device") else ""],
        "maintenance_risk": ["which devices need maintenance in the next 30 days?", f"why is {args.get('device')} flagged?" if args.get("device") else ""],
        "fleet_risk_ranking": [f"what is the maintenance risk of {device}?" if device else "", "show open alerts", "send me the weekly report"],
        "list_alerts": ["acknowledge alert #<id>", "which devices had anomalies today?", "what's the fleet status?"],
        "update_alert": ["show open alerts"],
        "render_report": ["which devices need maintenance in the next 30 days?", "show open alerts"],
        "run_sql": ["what's the fleet status?"],
        "memory_search": ["what's the fleet status?"],
    }
    return [q for q in table.get(tool, ["what's the fleet status?"]) if q][:3]


def answer_from_results(
    results: list[tuple[str, dict[str, Any], Any]],
    catalog: Catalog | None = None,
    show_n: int | None = None,
) -> str:
    """The final answer for a turn: one paragraph per tool result, details, then next questions.

    ``results`` holds ``(tool name, the arguments the model sent, ToolMessage content)``;
    ``show_n`` is the user's "top N" when the model asked the tool for a few more rows to see ties.
    """
    paragraphs: list[str] = []
    next_qs: list[str] = []
    for tool, args, content in results:
        result = parse_tool_content(content)
        status = result.get("status", "ok")
        if status == "error":
            error = str(result.get("error") or result.get("summary") or "the tool failed")
            if "did not confirm" in error:
                paragraphs.append(fill("answers", "not_confirmed", tool=tool))
                continue
            paragraphs.append(fill("answers", "error", error=error, fix=_fix_for(error)))
            continue
        if status == "no_data":
            summary = _sentence(tool, result)
            paragraphs.append(fill("answers", "no_data", summary=summary, fix=fill("answers", "fix_no_data")))
            continue
        if status == "needs_confirmation":
            params = result.get("params") or args
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            paragraphs.append(fill("answers", "needs_confirmation", tool=tool, params=shown))
            continue
        text = fill("answers", "ok", summary=_sentence(tool, result))
        details = _details(tool, result, show_n)
        if details:
            text += "\n\n" + details
            if result.get("truncated") and not args.get("top_n") and tool != "render_report":
                text += "\n" + fill("answers", "truncated")
        paragraphs.append(text)
        next_qs += [q for q in suggestions(tool, args, result, catalog) if q not in next_qs]
    if next_qs:
        paragraphs.append(fill("answers", "next", suggestions=quote_list(next_qs[:3])))
    return "\n\n".join(p for p in paragraphs if p)
