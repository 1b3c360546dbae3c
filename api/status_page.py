"""The operator's status page at /admin/: HTML made from the overview
(shared/store/overview.py), its numbers and charts (inline SVG) rendered on the server,
so it reads the same with JavaScript off. Its CSS and script (api/static/) are inlined
under a per-response nonce; nothing is loaded from anywhere else. The page refreshes
itself: its script swaps in the page fetched again every ``REFRESH`` seconds, and
without JavaScript a meta refresh reloads it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

REFRESH = 5  # seconds between updates of the page
_STATIC = Path(__file__).parent / "static"
CSS = (_STATIC / "status.css").read_text()
SCRIPT = (_STATIC / "status.js").read_text()


def security_headers(nonce: str) -> dict[str, str]:
    """What the page's responses carry: only its own inlined style and script run, it is
    never framed, cached or referred onwards."""
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'"),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def _page(title: str, body: str, nonce: str, head: str = "", refresh: int = 0) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style nonce=\"{nonce}\">{CSS}</style>{head}</head>"
        f'<body data-refresh="{refresh}">{body}</body></html>')


def login_page(nonce: str, message: str = "") -> str:
    """The login form: the admin token, posted once (never in a URL)."""
    error = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return _page("cachedproxy: log in", (
        '<main class="login"><h1>cachedproxy status</h1>'
        "<p>Log in with the admin token (<code>ADMIN_TOKEN</code>).</p>" + error +
        '<form method="post" action="/admin/login"><label>Admin token'
        '<input type="password" name="token" autocomplete="current-password" required '
        'autofocus></label><button type="submit">Log in</button></form></main>'), nonce)


def _header(at: str) -> str:
    return ('<header><h1>cachedproxy status</h1>'
            f'<p>as of <span id="at">{at}</span> · updates every {REFRESH} s</p>'
            '<form method="post" action="/admin/logout"><button type="submit">Log out'
            "</button></form></header>")


def _live(nonce: str) -> tuple[str, str]:
    """The script that updates the page, and the reload that does it without scripts."""
    return (f'<script nonce="{nonce}">{SCRIPT}</script>',
            f'<noscript><meta http-equiv="refresh" content="{2 * REFRESH}"></noscript>')


def unavailable_page(nonce: str, message: str) -> str:
    """The page while Redis, where every figure is, does not answer; it keeps trying."""
    script, head = _live(nonce)
    body = (_header("—") + f'<main><p class="error" role="alert" data-unavailable>'
            f"{escape(message)}: the figures are back when Redis answers.</p></main>"
            + script)
    return _page("cachedproxy status", body, nonce, head, REFRESH)


def _clock(text: str | None) -> str:
    """An RFC 3339 time as HH:MM:SS UTC in a <time> element; an em dash for none."""
    if text is None:
        return "—"
    at = datetime.fromisoformat(text)
    return f'<time datetime="{escape(text)}">{at:%H:%M:%S} UTC</time>'


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def duration_text(value: float | None) -> str:
    """Seconds as people read them: 50 ms, 4.5 s, 3 min; an em dash for none."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.0f} min"


def size_text(n: int) -> str:
    """Bytes as people write them: 812 B, 1.9 MB."""
    size = float(n)
    for unit in ("B", "kB", "MB"):
        if size < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def chart(series: Sequence[Sequence[float | None]], classes: Sequence[str], label: str
          ) -> str:
    """Bars of one or more series over the same minutes (stacked, oldest left), scaled
    to the highest stack; an SVG with its label for screen readers."""
    minutes = len(series[0]) if series else 0
    top = max((sum(s[i] or 0 for s in series) for i in range(minutes)), default=0) or 1
    width = 4
    bars = []
    for i in range(minutes):
        base = 0.0
        for values, cls in zip(series, classes, strict=True):
            value = values[i] or 0
            if value <= 0:
                continue
            height = 46 * value / top
            bars.append(f'<rect class="{cls}" x="{i * width}" y="{48 - base - height:.1f}" '
                        f'width="{width - 1}" height="{height:.1f}"/>')
            base += height
    return (f'<svg class="chart" viewBox="0 0 {max(minutes, 1) * width} 48" '
            f'preserveAspectRatio="none" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>{''.join(bars)}</svg>")


def _meter(part: float, whole: float | None) -> str:
    if not whole:
        return ""
    share = min(part / whole, 1.0)
    cls = "bad" if share > 0.9 else "warn" if share > 0.7 else "fill"
    return (f'<svg class="meter" viewBox="0 0 100 4" preserveAspectRatio="none" role="img" '
            f'aria-label="{100 * share:.0f} %"><rect class="track" width="100" height="4"/>'
            f'<rect class="{cls}" width="{100 * share:.1f}" height="4"/></svg>')


def _state(row: dict[str, Any]) -> str:
    state = row["state"]
    text = {"answering": "answering", "paced": "paced by its budget",
            "failing": "failing since " + _clock(row["failing_since"])}[state]
    return f'<span class="state {state}" data-state-text>{text}</span>'


def _upstream(row: dict[str, Any]) -> str:
    budget, reported, lag = row["budget"], row["reported"], row["refresh_lag_s"]
    limit = budget["per_hour"]
    spent = budget["spent_last_hour"]
    lines = [
        ("Budget, last hour", f"{spent} of {limit}" if limit else f"{spent} (no limit)"),
        ("Upstream reports", "—" if reported is None else
         f"{reported['remaining']} left, resets {_clock(reported['reset_at'])}"),
        ("Refreshes", f"{row['checks']['change']} found a change, "
                      f"{row['checks']['no_change']} confirmed the data"),
        ("Live resources", str(row["live_resources"])),
        ("Refresh lag", f"p50 {duration_text(lag['p50'])}, p99 {duration_text(lag['p99'])} "
                        f"({lag['refreshes']} refreshes)"),
        ("Most overdue refresh", duration_text(row["refresh_overdue_s"])),
        ("Stalest live entry", "fresh" if not row["oldest_stale_s"]
         else duration_text(row["oldest_stale_s"]) + " past"),
        ("Failures in a row", str(row["failures"])),
    ]
    if row["last_error"]:
        lines.append(("Last error", escape(row["last_error"])))
    if row["next_probe"]:
        lines.append(("Next probe", _clock(row["next_probe"])))
    name = escape(row["upstream"])
    return (
        f'<article class="card upstream" data-upstream="{name}" data-state="{row["state"]}">'
        f"<h3>{name} {_state(row)}</h3>{_meter(spent, limit)}"
        + chart([budget["by_minute"]], [""], f"requests to {row['upstream']} each minute")
        + "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in lines) + "</dl></article>")


def _summary(overview: dict[str, Any]) -> str:
    cache, redis, health = overview["cache"], overview["redis"], overview["health"]
    cap = redis["max_memory_bytes"]
    memory = size_text(redis["used_memory_bytes"]) + (f" of {size_text(cap)}" if cap else
                                                   " (no cap)")
    workers = health["workers"]
    beat = health["beat"]
    cards = [
        ("hit-ratio", "Hit ratio, last hour", _percent(cache["hit_ratio"]),
         f"{cache['answers_last_hour']} answers"),
        ("stale", "Stale answers", _percent(cache["stale_ratio"]), "of the last hour's"),
        ("misses", "Misses, last hour", str(cache["misses_last_hour"]), "fetched upstream"),
        ("redis", "Redis memory", memory,
         _meter(redis["used_memory_bytes"], cap) + f"{redis['evicted_keys']} keys evicted"),
        ("workers", "Workers", str(len(workers.get("seen", []))),
         ", ".join(escape(w) for w in workers.get("seen", [])) or "none alive"),
        ("beat", "Beat", "ticking" if beat["ok"] else "stalled",
         "last tick " + duration_text(beat.get("last_tick_s_ago")) + " ago"
         if beat.get("last_tick_s_ago") is not None else "never ticked"),
    ]
    ok = {"workers": workers["ok"], "beat": beat["ok"]}
    return '<section class="grid">' + "".join(
        f'<div class="card" data-card="{key}"><div class="muted">'
        + (f'<span class="dot {"ok" if ok[key] else "bad"}"></span>' if key in ok else "")
        + f'{title}</div><div class="big">{value}</div><div class="muted">{note}</div></div>'
        for key, title, value, note in cards) + "</section>"


def status_page(overview: dict[str, Any], nonce: str) -> str:
    """The whole page for one overview."""
    cache = overview["cache"]
    minutes = cache["by_minute"]
    hits = [m["hits"] for m in minutes]
    stale = [m["stale"] for m in minutes]
    misses = [m["misses"] for m in minutes]
    hottest = "".join(f'<tr><td>{escape(v["view"])}</td><td class="n">{v["answers"]}</td></tr>'
                      for v in cache["hottest_views"]) or '<tr><td colspan="2">none yet</td></tr>'
    script, head = _live(nonce)
    body = (
        _header(_clock(overview["at"])) + "<main>" + _summary(overview)
        + "<h2>Upstreams</h2><section class=\"grid\">"
        + "".join(_upstream(row) for row in overview["upstreams"]) + "</section>"
        + "<h2>Cache, last hour</h2><section class=\"grid\">"
        + '<div class="card"><div class="muted">Answers a minute: hits, stale, misses</div>'
        + chart([hits, stale, misses], ["", "stale", "miss"], "answers each minute") + "</div>"
        + '<div class="card"><div class="muted">Hottest views</div><table>'
        + f'<tr><th>view</th><th class="n">answers</th></tr>{hottest}</table></div>'
        + "</section></main>" + script)
    return _page("cachedproxy status", body, nonce, head, REFRESH)
