"""One self-contained HTML page about a table's run: progress over time, throughput, a timeline of makes
per host and task (failed makes marked from the jobs table), the duration distribution and the error groups.
For a whole pipeline: a row per table (upstream first: done, ready, running, failed, waiting, blocked, rate,
ETA), then those sections for each table.

Charts are inline SVG whose geometry is computed here from the completion history, on axes of round numbers
(1, 2 or 5 × 10^k; clock times and durations on round seconds, minutes, hours); each chart scales to the
page's width by its viewBox. The page has inline CSS, no script and no link to the network. The template
(templates/report.html.j2) autoescapes, so host names and error messages cannot inject markup. The newest
``REPORT_ROWS`` makes are drawn."""

from __future__ import annotations

import datetime as dt
import math
import socket
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from .errors import UsageError
from .history import HISTORY_TABLE, History
from .jobrows import error_groups, fetch_rows, key_text, select
from .progress import as_target, eta_text, seconds_text, target_progress

REPORT_ROWS = 20_000
MAX_LANES = 150
WIDTH, LEFT, RIGHT = 960, 64, 16
# hosts get blues, greens, browns, purples and greys: orange and red are kept for slow and failed makes
PALETTE = ["#4e79a7", "#59a14f", "#9c755f", "#76b7b2", "#b07aa1", "#bab0ac", "#86bcb6", "#8cd17d", "#499894",
           "#d4a6c8", "#a0cbe8", "#79706e"]
SLOW = "#f28e2b"  # orange: slower than the p95
FAILED = "#d62728"  # red: a make that raised
FAILED_WIDTH = 4
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


def nice_step(span: float, max_intervals: int = 5, *, integer: bool = False) -> float:
    """The smallest step of 1, 2 or 5 × 10^k that covers ``span`` in at most ``max_intervals`` steps
    (``integer``: at least 1, for counts)."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max_intervals
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    return max(step, 1.0) if integer else step


def value_axis(high: float, max_intervals: int = 5, *, integer: bool = False) -> list[float]:
    """Tick values from 0 to the first multiple of a nice step at or above ``high``: 0, 20, 40 ... 200."""
    high = high if high > 0 else 1.0
    step = nice_step(high, max_intervals, integer=integer)
    count = math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(count + 1)]


def number_label(value: float, step: float) -> str:
    """A tick value with as many decimals as its step needs: 0.25, 1,500, 2.5."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step >= 1 and not float(step).is_integer():
        decimals = 1
    return f"{value:,.{decimals}f}"


# steps a clock or a duration reads well in: seconds, minutes, hours and days (1-2-5 below a second)
TIME_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900,
              1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)


def time_step(span: float, max_intervals: int = 6) -> float:
    """The smallest step of TIME_STEPS that covers ``span`` seconds in at most ``max_intervals`` steps."""
    return next((s for s in TIME_STEPS if s * max_intervals >= span), TIME_STEPS[-1] * math.ceil(
        span / max_intervals / TIME_STEPS[-1]))


def clock_ticks(t0: float, t1: float, max_intervals: int = 6) -> tuple[list[float], str]:
    """Times between t0 and t1 on round local clock times (every 10 s, 5 min, 1 h ...) and their strftime format."""
    span = max(t1 - t0, 1e-3)
    step = time_step(span, max_intervals)
    offset = _local(t0).utcoffset().total_seconds()  # align to the local clock, not to UTC
    first = math.ceil((t0 + offset) / step - 1e-9) * step - offset
    ticks = [first + i * step for i in range(int((t1 - first) / step + 1e-9) + 1)]
    if step < 1:
        fmt = "%H:%M:%S.%f"
    elif step < 60:
        fmt = "%H:%M:%S"
    elif span < 86400:
        fmt = "%H:%M"
    else:
        fmt = "%m-%d %H:%M" if step < 86400 else "%Y-%m-%d"
    return ticks, fmt


def _clock_label(ts: float, fmt: str, step_below_second: bool) -> str:
    text = _local(ts).strftime(fmt)
    return text[:-5] if step_below_second else text  # tenths of a second, not microseconds


def duration_label(seconds: float) -> str:
    """A round duration as a tick label: 0, 500 ms, 2 s, 15 min, 6 h, 2 d."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds * 1000:g} ms" if seconds > 0 else "0"


def _anchor(x: float, label: str, width: float) -> str:
    """Text anchor of a tick label at x: a label that would cross the chart's edge is pulled inside."""
    half = len(label) * 3.3  # about half the label's width at 11 px
    return "end" if x + half > width else "start" if x - half < 0 else "middle"


def _time_ticks(t0: float, t1: float, x, width: int = 0) -> list[dict]:
    ticks, fmt = clock_ticks(t0, t1)
    out = []
    for t in ticks:
        label = _clock_label(t, fmt, fmt.endswith("%f"))
        out.append({"x": round(x(t), 1), "label": label, "anchor": _anchor(x(t), label, width or WIDTH)})
    return out


def _value_ticks(values: list[float], y) -> list[dict]:
    step = values[1] - values[0] if len(values) > 1 else 1.0
    return [{"y": round(y(v), 1), "label": number_label(v, step)} for v in values]


# ---------------------------------------------------------------------------- charts
def _frame(height: int, top_pad: int, bottom: int, left: int = LEFT) -> dict:
    return {"width": WIDTH, "height": height, "left": left, "right": WIDTH - RIGHT, "top": top_pad,
            "bottom": height - bottom}


def cumulative_chart(rows: list[HistoryRow], t0: float, t1: float, height: int = 240) -> dict:
    top_pad, bottom = 12, 28
    ends = sorted(r.end for r in rows)
    n = len(ends)
    values = value_axis(n, integer=True)
    top = values[-1]
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
    return {**_frame(height, top_pad, bottom), "points": " ".join(f"{a:.1f},{b:.1f}" for a, b in points),
            "xticks": _time_ticks(t0, t1, x), "yticks": _value_ticks(values, y), "count": n}


def throughput_chart(rows: list[HistoryRow], t0: float, t1: float, height: int = 200) -> dict:
    top_pad, bottom = 12, 28
    span = max(t1 - t0, 1e-9)
    size = next((b for b in _BINS_SECONDS if span / b <= 60), _BINS_SECONDS[-1])
    nbins = max(1, int(span // size) + 1)
    counts = [0] * nbins
    for r in rows:
        counts[min(int((r.end - t0) // size), nbins - 1)] += 1
    per_minute = [c * 60.0 / size for c in counts]
    values = value_axis(max(per_minute))
    top = values[-1]
    plot_w = WIDTH - LEFT - RIGHT
    bar_w = plot_w / nbins

    def x(t):
        return LEFT + (t - t0) / (nbins * size) * plot_w

    def y(v):
        return top_pad + (1 - v / top) * (height - top_pad - bottom)

    bars = [{"x": round(LEFT + i * bar_w, 1), "y": round(y(v), 1), "w": round(max(bar_w - 1, 0.5), 1),
             "h": round(y(0) - y(v), 1), "value": f"{v:,.1f}", "at": _local(t0 + i * size).strftime("%H:%M:%S")}
            for i, v in enumerate(per_minute) if v > 0]
    return {**_frame(height, top_pad, bottom), "bars": bars, "xticks": _time_ticks(t0, t0 + nbins * size, x),
            "yticks": _value_ticks(values, y), "bin": seconds_text(size),
            "peak": f"{max(per_minute):,.1f}", "mean": f"{len(rows) * 60.0 / max(span, 1.0):,.1f}"}


@dataclass
class FailedMake:
    """One failed make as the jobs table remembers it: when it ended, where, and why."""

    at: float  # epoch seconds
    host: str
    task: str  # JOBID_TASK, or "" for a process outside a scheduler
    pid: int
    message: str
    key: str


def failed_makes(connection, schema: str, table_name: str, jobs_table_name: str,
                 limit: int = REPORT_ROWS) -> list[FailedMake]:
    """Every failed make still on record: each ``error`` attempt in the rows' attempt history (a key that failed,
    waits for a retry, or is running again), else the error row itself."""
    query = select(connection, schema, table_name=table_name, statuses=["error", "pending", "reserved"],
                   jobs_table_name=jobs_table_name)
    out = []
    for row in fetch_rows(query, limit=limit, full=True):
        attempts = [a for a in row.history if isinstance(a, dict) and a.get("outcome") == "error"]
        if not attempts and row.status == "error":
            attempts = [{"host": row.host, "pid": row.pid, "job": row.sched_job_id, "task": row.sched_task_id,
                         "message": row.error_message}]
        for i, a in enumerate(attempts):
            latest = i == len(attempts) - 1 and row.status in ("error", "pending") and row.timestamp is not None
            when = row.timestamp if latest else _utc(a.get("at"))
            if when is None:
                continue
            job, task = str(a.get("job") or ""), str(a.get("task") or "")
            out.append(FailedMake(when.replace(tzinfo=dt.timezone.utc).timestamp(), str(a.get("host") or ""),
                                  f"{job}_{task}" if job and task else job, int(a.get("pid") or 0),
                                  str(a.get("message") or row.error_message), key_text(row.key)))
    return sorted(out, key=lambda f: f.at)


def _utc(text) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text)).replace(tzinfo=None)
    except ValueError:
        return None


def timeline_chart(rows: list[HistoryRow], t0: float, t1: float, slow_after: float | None,
                   failures: list[FailedMake] = ()) -> dict:
    """Gantt rows per host and task (or process): each make a bar, gaps are idle time; orange bars are slow,
    a red mark is a failed make (drawn where it ended: the jobs table keeps no start of a failed make)."""
    lane_h, top_pad, bottom, left = 16, 8, 28, 250
    lanes: dict[tuple, dict] = {}
    for r in rows:
        lanes.setdefault((r.host, r.task or f"pid {r.pid}"), {"made": [], "failed": []})["made"].append(r)
    for f in failures:
        lanes.setdefault((f.host, f.task or f"pid {f.pid}"), {"made": [], "failed": []})["failed"].append(f)
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
    out_lanes, bars, marks = [], [], []
    for i, key in enumerate(keys):
        host, task = key
        y = top_pad + i * lane_h
        made, failed = lanes[key]["made"], lanes[key]["failed"]
        busy = sum(r.duration for r in made)
        name = f"{host} · {task}"
        count = f"{len(made)}" + (f", {len(failed)} failed" if failed else "")
        out_lanes.append({"y": y, "label_y": y + lane_h - 4, "host": host, "task": task, "makes": len(made),
                          "count": count, "busy": f"{100.0 * busy / span:.0f}%", "shade": i % 2 == 0, "full": name,
                          "label": name if len(name) <= 24 else name[:11] + "…" + name[-12:]})
        for r in made:
            slow = slow_after is not None and r.duration > slow_after
            bars.append({"x": round(x(r.start), 2), "y": y + 2, "w": round(max(x(r.end) - x(r.start), 1.0), 2),
                         "h": lane_h - 4, "fill": SLOW if slow else colour[host], "kind": "slow" if slow else "made",
                         "title": f"{host} {task}: {seconds_text(r.duration)} from "
                                  f"{_local(r.start).strftime('%H:%M:%S')}"})
        for f in failed:
            end = x(f.at)
            marks.append({"x": round(max(end - FAILED_WIDTH, left), 2), "y": y + 1, "w": FAILED_WIDTH,
                          "h": lane_h - 2, "title": f"{host} {task}: failed at {_local(f.at).strftime('%H:%M:%S')}"
                                                    f" ({f.key}): {f.message}"})
    return {**_frame(height, top_pad, bottom, left), "lanes": out_lanes, "bars": bars, "failed": marks,
            "lane_h": lane_h, "xticks": _time_ticks(t0, t1, x), "hidden": hidden,
            "legend": [{"host": h, "fill": colour[h]} for h in hosts], "slow_fill": SLOW, "failed_fill": FAILED,
            "slow_after": seconds_text(slow_after) if slow_after is not None else None}


def histogram_chart(durations: list[float], p50: float, p95: float, height: int = 220) -> dict:
    """Make durations in bins that divide the axis's round ticks (0, 30 s, 1 min ... or 0, 0.5 s, 1 s ...)."""
    top_pad, bottom = 12, 28
    longest = max(max(durations), 1e-3)
    step = time_step(longest, 5)
    hi = math.ceil(longest / step - 1e-9) * step
    size = next(step / n for n in (10, 6, 5, 4, 3, 2, 1) if hi / (step / n) <= 40 + 1e-9)
    nbins = max(1, round(hi / size))
    counts = [0] * nbins
    for d in durations:
        counts[min(int(d / size), nbins - 1)] += 1
    values = value_axis(max(counts), integer=True)
    top = values[-1]
    plot_w = WIDTH - LEFT - RIGHT

    def x(v):
        return LEFT + v / hi * plot_w

    def y(v):
        return top_pad + (1 - v / top) * (height - top_pad - bottom)

    bars = [{"x": round(x(i * size), 1), "y": round(y(c), 1), "w": round(max(plot_w / nbins - 1, 0.5), 1),
             "h": round(y(0) - y(c), 1), "count": c,
             "range": f"{seconds_text(i * size)} – {seconds_text((i + 1) * size)}"}
            for i, c in enumerate(counts) if c]
    xticks = []
    for i in range(round(hi / step) + 1):
        label = duration_label(round(i * step, 9))
        xticks.append({"x": round(x(i * step), 1), "label": label, "anchor": _anchor(x(i * step), label, WIDTH)})
    marks = []
    for value, name in ((p50, "median"), (p95, "p95")):
        at = x(value)
        near_right = at > WIDTH - RIGHT - 120
        marks.append({"x": round(at, 1), "label": f"{name} {seconds_text(value)}",
                      "tx": round(at - 4 if near_right else at + 4, 1), "anchor": "end" if near_right else "start"})
    return {**_frame(height, top_pad, bottom), "bars": bars, "xticks": xticks, "yticks": _value_ticks(values, y),
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
    ctx = table_context(target, target_progress(target), limit=limit)
    if not ctx["rows_drawn"] and not ctx["errors"]:
        raise UsageError(f"no completions recorded for {target.name} yet and no errors: run populate first "
                         "(history is off if DJHPC_HISTORY=0)")
    return ctx


def _page(title: str, schema: str) -> dict:
    now = dt.datetime.now().astimezone()
    return {"title": f"{title} — djhpc report", "table": title, "schema": schema,
            "generated": now.strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)"), "host": socket.gethostname()}


def table_context(target, progress, *, limit: int = REPORT_ROWS, eta: str | None = None, stats=()) -> dict:
    """One table's part of the page: its numbers (``progress``: a TableProgress), charts and errors. ``eta``
    replaces eta_text's; ``stats`` are (name, value) rows added to the summary."""
    name, schema, connection = target.name, target.database, target.connection
    rows = history_rows(connection, schema, target.table_name, limit=limit, history_table=target.history_table)
    groups = error_groups(connection, schema, table_name=target.table_name, jobs_table_name=target.jobs_table)
    ctx = {**_page(name, schema),
           "progress": progress, "eta": eta or eta_text(progress, clock_format="about %Y-%m-%d %H:%M"),
           "rows_drawn": len(rows),
           "completions": progress.completions, "truncated": progress.completions > len(rows),
           "errors": [{"table": g.table_name, "type": g.error_type, "message": g.message, "count": f"{g.count:,}",
                       "example": key_text(g.example_key), "example_message": g.example_message} for g in groups],
           "failed": f"{sum(g.count for g in groups):,}"}
    ctx["stats"] = [
        ("Keys in the key source", f"{progress.total:,}"), ("Done", f"{progress.done:,}"),
        ("Remaining", f"{progress.remaining:,}"), ("Running now", f"{progress.reserved:,}"),
        ("Failed", f"{progress.error:,}"), ("Ignored", f"{progress.ignore:,}"),
        ("Waiting for a retry", f"{progress.pending:,}"), *stats,
        ("Done %", f"{progress.percent:.1f}%" if progress.percent is not None else "—"),
        ("Rate (last 10 min)", f"{progress.rate_per_minute:,.1f} /min" if progress.rate_per_minute is not None
         else "—"), ("ETA", ctx["eta"])]
    failures = failed_makes(connection, schema, target.table_name, target.jobs_table, limit)
    ctx.update(_charts(rows, failures, ctx["truncated"]))
    return ctx


def build_pipeline_context(pipeline, targets: dict, *, whole=None, limit: int = REPORT_ROWS) -> dict:
    """The page of a whole pipeline: a row per table, upstream first, then each table's sections (its newest
    ``limit`` makes drawn). ``targets``: each table's populate target (pipework.targets_for); ``whole``: the
    pipeline ``pipeline`` was limited from (pipeview.pipeline_table_progress)."""
    from .pipeview import blocked_text, outlook, pipeline_table_progress

    progress = pipeline_table_progress(pipeline, targets, whole=whole)
    tables, rows = [], []
    for cls, p in zip(pipeline.tables, progress, strict=True):
        eta = outlook(p, clock_format="about %Y-%m-%d %H:%M")
        ctx = table_context(targets[cls], p, limit=limit, eta=eta, stats=[
            ("Ready now", f"{p.ready:,}"), ("Waiting for inputs", _count(p.waiting)),
            ("Blocked by failures upstream", _count(p.blocked)), ("Keys once upstream is made", _count(p.expected))])
        ctx.update(table=cls.__name__, anchor=f"table-{cls.__name__}")
        tables.append(ctx)
        rows.append({"table": cls.__name__, "anchor": ctx["anchor"], "depends_on": ", ".join(p.depends_on) or "—",
                     "done": f"{p.done:,} / {_count(p.expected)}", "ready": f"{p.ready:,}",
                     "running": f"{p.reserved:,}", "failed": f"{p.error:,}", "waiting": _count(p.waiting),
                     "blocked": _count(p.blocked), "eta": eta, "p95": seconds_text(p.duration.p95 if p.duration
                                                                                   else None),
                     "rate": f"{p.rate_per_minute:,.1f}" if p.rate_per_minute is not None else "—"})
    if not any(t["rows_drawn"] or t["errors"] for t in tables):
        raise UsageError(f"no completions recorded for any table of pipeline {pipeline.name} yet and no errors: "
                         "run djhpc work (or submit) first (history is off if DJHPC_HISTORY=0)")
    schemas = ", ".join(dict.fromkeys(targets[c].database for c in pipeline.tables))
    return {**_page(pipeline.label, schemas), "tables": tables,
            "pipeline": {"name": pipeline.name, "rows": rows, "blocked": blocked_text(progress)}}


def _count(n) -> str:
    return "—" if n is None else f"{n:,}"


def _charts(rows: list[HistoryRow], failures: list[FailedMake], truncated: bool) -> dict:
    """The charts over one time range: the drawn makes' and the failures' (older failures are left out when
    only the newest makes are drawn)."""
    if rows and truncated:
        failures = [f for f in failures if f.at >= min(r.start for r in rows)]
    times = [r.start for r in rows] + [r.end for r in rows] + [f.at for f in failures]
    if not times:
        return {"failures_drawn": 0}
    t0 = min(times)
    t1 = max(max(times), t0 + 1.0)
    out = {"failures_drawn": len(failures), "first": _local(t0).strftime("%Y-%m-%d %H:%M:%S"),
           "last": _local(t1).strftime("%Y-%m-%d %H:%M:%S"), "span": seconds_text(t1 - t0)}
    if not rows:
        out["timeline"] = timeline_chart([], t0, t1, None, failures)
        return out
    durations = sorted(r.duration for r in rows)
    p50, p95 = _quantile(durations, 0.5), _quantile(durations, 0.95)
    cpu = sorted(r.cpu_seconds for r in rows)
    mem = sorted(r.max_rss_mb for r in rows)
    out.update(
        cumulative=cumulative_chart(rows, t0, t1), throughput=throughput_chart(rows, t0, t1),
        timeline=timeline_chart(rows, t0, t1, p95, failures), histogram=histogram_chart(durations, p50, p95),
        hosts=host_summary(rows),
        sizing=[("Make time", seconds_text(p50), seconds_text(p95), seconds_text(durations[-1])),
                ("CPU seconds", seconds_text(_quantile(cpu, 0.5)), seconds_text(_quantile(cpu, 0.95)),
                 seconds_text(cpu[-1])),
                ("Peak memory", _mb(_quantile(mem, 0.5)), _mb(_quantile(mem, 0.95)), _mb(mem[-1]))])
    return out


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
    return _template().render(**context, page=context)


def write_report(table, path, *, limit: int = REPORT_ROWS) -> Path:
    """Write the report of ``table`` to ``path``; returns the path."""
    return write_page(build_context(table, limit=limit), path)


def write_pipeline_report(pipeline, targets: dict, path, *, whole=None, limit: int = REPORT_ROWS) -> Path:
    """Write the report of a whole pipeline (a row per table, then each table's sections) to ``path``."""
    return write_page(build_pipeline_context(pipeline, targets, whole=whole, limit=limit), path)


def write_page(context: dict, path) -> Path:
    html = render(context)
    path = Path(path)
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}: choose another -o path") from e
    return path

