"""One self-contained HTML page about a table's run: progress over time, throughput, a timeline of makes
per host and task, the duration distribution and the error groups.

Charts are inline SVG whose geometry is computed here from the completion history; the page has inline
CSS, no script and no link to the network. The template (templates/report.html.j2) autoescapes, so host
names and error messages cannot inject markup. The newest ``REPORT_ROWS`` makes are drawn.
"""

from __future__ import annotations

import datetime as dt
import socket
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from .errors import UsageError
from .history import HISTORY_TABLE, History
from .jobrows import error_groups, key_text
from .progress import as_target, eta_text, seconds_text, target_progress

REPORT_ROWS = 20_000
MAX_LANES = 150
WIDTH, LEFT, RIGHT = 960, 64, 16
PALETTE = ["#4e79a7", "#59a14f", "#9c755f", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#bab0ac", "#86bcb6",
           "#8cd17d", "#499894", "#d4a6c8"]
SLOW = "#e15759"
_BINS_SECONDS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]


@dataclass
class HistoryRow:
    started_at: dt.datetime  # UTC
    duration: float
    host: str
    sched_job_id: str
    sched_task_id: str
    cpu_seconds: float
    max_rss_mb: float
    pid: int = 0

    @property
    def start(self) -> float:
        return self.started_at.replace(tzinfo=dt.timezone.utc).timestamp()

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def task(self) -> str:
        if not self.sched_job_id:
            return ""
        return f"{self.sched_job_id}_{self.sched_task_id}" if self.sched_task_id else self.sched_job_id


def history_rows(connection, schema: str, table_name: str, *, limit: int = REPORT_ROWS,
                 history_table: str = HISTORY_TABLE) -> list[HistoryRow]:
    """The newest ``limit`` makes of a table, oldest first (``history_table``: ``~djhpc_history`` for DataJoint)."""
    history = History(connection, schema, history_table)
    history.ensure_table()
    rows = connection.run("history_rows", (table_name, int(limit)), history=history.table).fetchall()
    out = []
    for started, duration, host, job, task, cpu, rss, pid in rows:
        when = started if isinstance(started, dt.datetime) else dt.datetime.fromisoformat(str(started))
        out.append(HistoryRow(when, float(duration), host or "", job or "", task or "", float(cpu or 0),
                              float(rss or 0), int(pid or 0)))
    out.reverse()
    return out


# ---------------------------------------------------------------------------- axes
def _local(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).astimezone()


def _time_ticks(t0: float, t1: float, x, n: int = 6) -> list[dict]:
    span = max(t1 - t0, 1e-9)
    fmt = "%H:%M:%S" if span < 600 else "%H:%M" if span < 86400 else "%m-%d %H:%M"
    return [{"x": round(x(t0 + span * i / (n - 1)), 1), "label": _local(t0 + span * i / (n - 1)).strftime(fmt),
             "anchor": _anchor(i, n)} for i in range(n)]


def _anchor(i: int, n: int) -> str:
    """Text anchor of tick i of n: the end labels stay inside the chart."""
    return "start" if i == 0 else "end" if i == n - 1 else "middle"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 2.5, 5, 10):
        magnitude = 10 ** len(str(int(value))) / 10
        if step * magnitude >= value:
            return step * magnitude
    return value


def _value_ticks(top: float, y) -> list[dict]:
    n = next((k for k in (5, 6, 3) if float(top / (k - 1)).is_integer()), 5)
    out = []
    for i in range(n):
        v = top * i / (n - 1)
        label = f"{v:,.0f}" if top >= 10 else f"{v:,.1f}"
        out.append({"y": round(y(v), 1), "label": label})
    return out


# ---------------------------------------------------------------------------- charts
def cumulative_chart(rows: list[HistoryRow], t0: float, t1: float, height: int = 240) -> dict:
    top_pad, bottom = 12, 28
    ends = sorted(r.end for r in rows)
    n = len(ends)
    top = _nice_max(n)
    span = max(t1 - t0, 1e-9)

    def x(t):
        return LEFT + (t - t0) / span * (WIDTH - LEFT - RIGHT)

    def y(v):
        return top_pad + (1 - v / top) * (height - top_pad - bottom)

    step = max(1, n // 800)
    points = [(x(t0), y(0))]
    for i in range(0, n, step):
        points.append((x(ends[i]), y(i + 1)))
    points.append((x(ends[-1]), y(n)))
    return {"width": WIDTH, "height": height, "left": LEFT, "right": WIDTH - RIGHT, "top": top_pad,
            "bottom": height - bottom, "points": " ".join(f"{a:.1f},{b:.1f}" for a, b in points),
            "xticks": _time_ticks(t0, t1, x), "yticks": _value_ticks(top, y), "count": n}


def throughput_chart(rows: list[HistoryRow], t0: float, t1: float, height: int = 200) -> dict:
    top_pad, bottom = 12, 28
    span = max(t1 - t0, 1e-9)
    size = next((b for b in _BINS_SECONDS if span / b <= 60), _BINS_SECONDS[-1])
    nbins = max(1, int(span // size) + 1)
    counts = [0] * nbins
    for r in rows:
        counts[min(int((r.end - t0) // size), nbins - 1)] += 1
    per_minute = [c * 60.0 / size for c in counts]
    top = _nice_max(max(per_minute))
    plot_w = WIDTH - LEFT - RIGHT
    bar_w = plot_w / nbins

    def x(t):
        return LEFT + (t - t0) / (nbins * size) * plot_w

    def y(v):
        return top_pad + (1 - v / top) * (height - top_pad - bottom)

    bars = [{"x": round(LEFT + i * bar_w, 1), "y": round(y(v), 1), "w": round(max(bar_w - 1, 0.5), 1),
             "h": round(y(0) - y(v), 1), "value": f"{v:,.1f}", "at": _local(t0 + i * size).strftime("%H:%M:%S")}
            for i, v in enumerate(per_minute) if v > 0]
    return {"width": WIDTH, "height": height, "left": LEFT, "right": WIDTH - RIGHT, "top": top_pad,
            "bottom": height - bottom, "bars": bars, "xticks": _time_ticks(t0, t0 + nbins * size, x),
            "yticks": _value_ticks(top, y), "bin": seconds_text(size),
            "peak": f"{max(per_minute):,.1f}", "mean": f"{len(rows) * 60.0 / max(span, 1.0):,.1f}"}


def timeline_chart(rows: list[HistoryRow], t0: float, t1: float, slow_after: float) -> dict:
    """Gantt rows per host and task (or process): each make a bar; gaps are idle time, red bars are slow."""
    lane_h, top_pad, bottom, left = 16, 8, 28, 250
    lanes: dict[tuple, list] = {}
    for r in rows:
        lanes.setdefault((r.host, r.task or f"pid {r.pid}"), []).append(r)
    keys = sorted(lanes)
    hidden = max(0, len(keys) - MAX_LANES)
    keys = keys[:MAX_LANES]
    hosts = sorted({h for h, _ in keys})
    colour = {h: PALETTE[i % len(PALETTE)] for i, h in enumerate(hosts)}
    span = max(t1 - t0, 1e-9)
    plot_w = WIDTH - left - RIGHT

    def x(t):
        return left + (t - t0) / span * plot_w

    height = top_pad + lane_h * len(keys) + bottom
    out_lanes, bars = [], []
    for i, key in enumerate(keys):
        host, task = key
        y = top_pad + i * lane_h
        made = lanes[key]
        busy = sum(r.duration for r in made)
        name = f"{host} · {task}"
        out_lanes.append({"y": y, "label_y": y + lane_h - 4, "host": host, "task": task, "makes": len(made),
                          "busy": f"{100.0 * busy / span:.0f}%", "shade": i % 2 == 0, "full": name,
                          "label": name if len(name) <= 24 else name[:11] + "…" + name[-12:]})
        for r in made:
            slow = r.duration > slow_after
            bars.append({"x": round(x(r.start), 2), "y": y + 2, "w": round(max(x(r.end) - x(r.start), 1.0), 2),
                         "h": lane_h - 4, "fill": SLOW if slow else colour[host],
                         "title": f"{host} {task}: {seconds_text(r.duration)} from "
                                  f"{_local(r.start).strftime('%H:%M:%S')}"})
    return {"width": WIDTH, "height": height, "left": left, "right": WIDTH - RIGHT, "top": top_pad,
            "bottom": height - bottom, "lanes": out_lanes, "bars": bars, "lane_h": lane_h,
            "xticks": _time_ticks(t0, t1, x), "hidden": hidden,
            "legend": [{"host": h, "fill": colour[h]} for h in hosts], "slow_fill": SLOW,
            "slow_after": seconds_text(slow_after)}


def histogram_chart(durations: list[float], p50: float, p95: float, height: int = 220, nbins: int = 30) -> dict:
    top_pad, bottom = 12, 28
    lo, hi = 0.0, max(durations)
    hi = hi if hi > lo else lo + 1e-3
    size = (hi - lo) / nbins
    counts = [0] * nbins
    for d in durations:
        counts[min(int((d - lo) / size), nbins - 1)] += 1
    top = _nice_max(max(counts))
    plot_w = WIDTH - LEFT - RIGHT

    def x(v):
        return LEFT + (v - lo) / (hi - lo) * plot_w

    def y(v):
        return top_pad + (1 - v / top) * (height - top_pad - bottom)

    bars = [{"x": round(x(lo + i * size), 1), "y": round(y(c), 1), "w": round(max(plot_w / nbins - 1, 0.5), 1),
             "h": round(y(0) - y(c), 1), "count": c,
             "range": f"{seconds_text(lo + i * size)} – {seconds_text(lo + (i + 1) * size)}"}
            for i, c in enumerate(counts) if c]
    xticks = [{"x": round(x(lo + (hi - lo) * i / 5), 1), "label": seconds_text(lo + (hi - lo) * i / 5),
               "anchor": _anchor(i, 6)} for i in range(6)]
    marks = []
    for value, name in ((p50, "median"), (p95, "p95")):
        at = x(value)
        near_right = at > WIDTH - RIGHT - 120
        marks.append({"x": round(at, 1), "label": f"{name} {seconds_text(value)}",
                      "tx": round(at - 4 if near_right else at + 4, 1), "anchor": "end" if near_right else "start"})
    return {"width": WIDTH, "height": height, "left": LEFT, "right": WIDTH - RIGHT, "top": top_pad,
            "bottom": height - bottom, "bars": bars, "xticks": xticks, "yticks": _value_ticks(top, y),
            "marks": marks}


def host_summary(rows: list[HistoryRow]) -> list[dict]:
    by: dict[str, list[HistoryRow]] = {}
    for r in rows:
        by.setdefault(r.host, []).append(r)
    out = []
    for host in sorted(by):
        made = by[host]
        out.append({"host": host, "makes": f"{len(made):,}", "tasks": f"{len({r.task or r.pid for r in made}):,}",
                    "median": seconds_text(statistics.median(r.duration for r in made)),
                    "longest": seconds_text(max(r.duration for r in made)),
                    "first": _local(min(r.start for r in made)).strftime("%Y-%m-%d %H:%M:%S"),
                    "last": _local(max(r.end for r in made)).strftime("%Y-%m-%d %H:%M:%S")})
    return out


def _quantile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[int(q * 100) - 1]


# ---------------------------------------------------------------------------- the page
def build_context(table, *, limit: int = REPORT_ROWS) -> dict:
    """Everything the template shows, computed from the database (a few queries, ``limit`` history rows).

    ``table``: a djhpc table class or instance, a DataJoint table class, or a populate target."""
    target = as_target(table)
    name, schema, connection = target.name, target.database, target.connection
    progress = target_progress(target)
    rows = history_rows(connection, schema, target.table_name, limit=limit, history_table=target.history_table)
    groups = error_groups(connection, schema, table_name=target.table_name, jobs_table_name=target.jobs_table)
    if not rows and not groups:
        raise UsageError(f"no completions recorded for {name} yet and no errors: run populate first "
                         "(history is off if DJHPC_HISTORY=0)")
    now = dt.datetime.now().astimezone()
    ctx = {"title": f"{name} — djhpc report", "table": name, "schema": schema,
           "generated": now.strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)"), "host": socket.gethostname(),
           "progress": progress, "eta": eta_text(progress, clock_format="about %Y-%m-%d %H:%M"),
           "rows_drawn": len(rows),
           "completions": progress.completions, "truncated": progress.completions > len(rows),
           "errors": [{"table": g.table_name, "type": g.error_type, "message": g.message, "count": f"{g.count:,}",
                       "example": key_text(g.example_key), "example_message": g.example_message} for g in groups],
           "failed": f"{sum(g.count for g in groups):,}"}
    ctx["stats"] = [
        ("Keys in the key source", f"{progress.total:,}"), ("Done", f"{progress.done:,}"),
        ("Remaining", f"{progress.remaining:,}"), ("Running now", f"{progress.reserved:,}"),
        ("Failed", f"{progress.error:,}"), ("Ignored", f"{progress.ignore:,}"),
        ("Waiting for a retry", f"{progress.pending:,}"),
        ("Done %", f"{progress.percent:.1f}%" if progress.percent is not None else "—"),
        ("Rate (last 10 min)", f"{progress.rate_per_minute:,.1f} /min" if progress.rate_per_minute is not None
         else "—"), ("ETA", ctx["eta"])]
    if rows:
        t0 = min(r.start for r in rows)
        t1 = max(max(r.end for r in rows), t0 + 1.0)
        durations = sorted(r.duration for r in rows)
        p50, p95 = _quantile(durations, 0.5), _quantile(durations, 0.95)
        cpu = sorted(r.cpu_seconds for r in rows)
        mem = sorted(r.max_rss_mb for r in rows)
        ctx.update(
            cumulative=cumulative_chart(rows, t0, t1), throughput=throughput_chart(rows, t0, t1),
            timeline=timeline_chart(rows, t0, t1, p95), histogram=histogram_chart(durations, p50, p95),
            hosts=host_summary(rows), first=_local(t0).strftime("%Y-%m-%d %H:%M:%S"),
            last=_local(t1).strftime("%Y-%m-%d %H:%M:%S"), span=seconds_text(t1 - t0),
            sizing=[("Make time", seconds_text(p50), seconds_text(p95), seconds_text(durations[-1])),
                    ("CPU seconds", seconds_text(_quantile(cpu, 0.5)), seconds_text(_quantile(cpu, 0.95)),
                     seconds_text(cpu[-1])),
                    ("Peak memory", _mb(_quantile(mem, 0.5)), _mb(_quantile(mem, 0.95)), _mb(mem[-1]))])
    return ctx


def _mb(v: float) -> str:
    return f"{v / 1024:,.1f} GB" if v >= 1024 else f"{v:,.0f} MB"


def _template() -> jinja2.Template:
    try:
        text = resources.files("djhpc.templates").joinpath("report.html.j2").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, TypeError):
        text = (Path(__file__).resolve().parents[1] / "templates" / "report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    return env.from_string(text)


def render(context: dict) -> str:
    return _template().render(**context)


def write_report(table, path, *, limit: int = REPORT_ROWS) -> Path:
    """Write the report of ``table`` to ``path``; returns the path."""
    html = render(build_context(table, limit=limit))
    path = Path(path)
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}: choose another -o path") from e
    return path

