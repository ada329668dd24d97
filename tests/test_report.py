"""djhpc report: one self-contained HTML page for a pipeline with failures on several hosts, rendered by
headless Chromium (screenshot decoded: not blank, the charts' colours drawn; DOM text: every section,
host names, error messages); everything escaped; no history is one line and exit 2. Axes on round numbers
(unit tests); failed makes in the timeline; a real run through the CLI measured in Chromium at 800 and 1400 px
(charts inside the window and filling their column, no label cut, failures and stragglers on screen)."""

from __future__ import annotations

import collections
import datetime as dt
import html as html_lib
import json
import math
import os
import re
import struct
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path

import pytest
from support.chain import TABLES, ChainProject
from support.chainviews import PARENTS, filled_chain
from support.cluster import cli_env
from support.env import ROOT, need_binary
from support.pipeline import PIPELINES

from djhpc.cli.main import main
from djhpc.history import History
from djhpc.report import (
    FAILED,
    LEFT,
    RIGHT,
    SLOW,
    WIDTH,
    clock_ticks,
    duration_label,
    histogram_chart,
    nice_step,
    number_label,
    value_axis,
)
from djhpc.reservation import Reservations, Worker, key_hash

SECTIONS = ["Summary", "Progress over time", "Throughput", "Timeline of makes per host and task", "Make duration",
            "Errors"]
EVIL_HOST = "node-<script>alert(1)</script>&\"'"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def run_cli(capsys, *argv):
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def build_run(p, db, schema_name, monkeypatch):
    """A real populate with failures here, an error on node-b, and makes on node-a, node-b and a host
    whose name is markup, two array tasks each (one straggler)."""
    p.Item.insert([(i, i) for i in range(40)])
    monkeypatch.setenv("DJHPC_TEST_FAIL", "3,5")
    p.Square.populate("item < 12", reserve_jobs=True, suppress_errors=True)
    monkeypatch.setenv("DJHPC_TEST_FAIL", "")
    other = Reservations(db, schema_name, Worker(host="node-b", pid=77, sched_job_id="900", sched_task_id="2"))
    claim = other.reserve("__square", [{"item": 30}])[0]
    other.fail(claim, "MemoryError: out of memory <on node-b> & more", "Traceback ...\nMemoryError")
    other.close()
    history = History(db, schema_name)
    start = time.time() - 900
    with db.transaction:
        for h, host in enumerate(["node-a", "node-b", EVIL_HOST]):
            for task in (1, 2):
                t = start + 5 * h
                for i in range(12):
                    duration = 30.0 if (h, task, i) == (0, 1, 5) else 8.0 + (i % 4)
                    history.record("__square", key_hash({"item": 1000 + 100 * h + 10 * task + i}),
                                   Worker(host=host, pid=100 + h, sched_job_id="900", sched_task_id=str(task)), t,
                                   duration, duration * 0.8, 200.0 + 50 * h)
                    t += duration + 2


def decode_png(data: bytes):
    """(width, height, bytes per pixel, rows) of an 8-bit RGB or RGBA PNG: zlib and the five row filters."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray(map(lambda a, b: (a + b) & 255, line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    binary = need_binary("chromium")
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.chromium
def test_report_renders_in_chromium(pipeline, db, schema_name, monkeypatch, tmp_path, capsys):
    build_run(pipeline, db, schema_name, monkeypatch)
    out_file = tmp_path / "report.html"
    rc, out, err = run_cli(capsys, "report", "pipeline_counts:Square", "-o", out_file)
    assert rc == 0 and f"wrote {out_file}" in out, err

    html = out_file.read_text(encoding="utf-8")
    for needle in ("<script", "http://", "https://", "<link", "@import", " src="):
        assert needle not in html, f"{needle!r} in the page: it must be self-contained and escaped"
    assert "node-&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in html
    assert html.count("<svg") == 4 and "<style>" in html

    dom = chromium(tmp_path, "--dump-dom", out_file.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in text, heading
    for needle in ("node-a", "node-b", "node-&lt;script&gt;alert(1)&lt;/script&gt;", "900_1", "900_2",
                   "ValueError", "bad item &lt;n&gt;", "MemoryError", "out of memory &lt;on node-b&gt; &amp; more",
                   "Keys in the key source", "Done %", "median", "p95"):
        assert needle in text, needle
    assert "<script" not in text  # the host name stayed text

    png = tmp_path / "report.png"
    shot = chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,2000", out_file.as_uri())
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    width, height, bpp, rows = decode_png(png.read_bytes())
    assert (width, height) == (1280, 2000)
    colours = collections.Counter(r[i:i + 3] for r in rows[::2] for i in range(0, len(r), bpp * 2))
    white = colours[b"\xff\xff\xff"]
    assert white < 0.97 * sum(colours.values()), "the screenshot is (nearly) blank"
    assert len(colours) > 50, "too few colours for text and charts"
    # the charts' own colours are on screen: progress line/first host, throughput bars, histogram bars
    for hex_colour in ("4e79a7", "59a14f", "76b7b2"):
        assert colours[bytes.fromhex(hex_colour)] > 20, hex_colour


def test_report_numbers_without_a_browser(pipeline, db, schema_name, monkeypatch, tmp_path, capsys):
    build_run(pipeline, db, schema_name, monkeypatch)
    from djhpc.report import build_context

    ctx = build_context(pipeline.Square)
    assert ctx["progress"].total == 40 and ctx["progress"].done == 10 and ctx["progress"].error == 3
    assert [(e["type"], e["message"], e["count"]) for e in ctx["errors"]] == [
        ("ValueError", "bad item <n>", "2"), ("MemoryError", "out of memory <on node-b> & more", "1")]
    hosts = {h["host"]: h for h in ctx["hosts"]}
    assert set(hosts) >= {"node-a", "node-b", EVIL_HOST} and hosts["node-a"]["makes"] == "24"
    lanes = {(lane["host"], lane["task"]) for lane in ctx["timeline"]["lanes"]}
    assert {("node-a", "900_1"), ("node-a", "900_2"), (EVIL_HOST, "900_2")} <= lanes
    slow = [b for b in ctx["timeline"]["bars"] if b["kind"] == "slow" and b["fill"] == "#f28e2b"]
    assert slow and any("30.0 s" in b["title"] for b in slow), "the straggler is marked"
    assert ctx["cumulative"]["count"] == 82  # 72 recorded + 10 made here


def test_only_errors_still_renders(pipeline, tmp_path, capsys, monkeypatch):
    pipeline.Item.insert([(1, 1), (2, 2)])
    monkeypatch.setenv("DJHPC_TEST_FAIL", "1,2")
    pipeline.Square.populate(reserve_jobs=True, suppress_errors=True)
    rc, _, err = run_cli(capsys, "report", "pipeline_counts:Square", "-o", tmp_path / "r.html")
    assert rc == 0, err
    html = (tmp_path / "r.html").read_text()
    assert "No completions recorded yet" in html and "bad item &lt;n&gt;" in html


@pytest.mark.parametrize("case", ["no history", "bad output", "not a table", "manual table"])
def test_bad_input_is_one_line_and_exit_2(pipeline, tmp_path, capsys, case):
    pipeline.Item.insert([(1, 1)])
    argv = {"no history": ["report", "pipeline_counts:Square", "-o", tmp_path / "r.html"],
            "bad output": ["report", "pipeline_counts:Square", "-o", tmp_path / "no" / "dir" / "r.html"],
            "not a table": ["report", "pipeline_counts:Nope", "-o", tmp_path / "r.html"],
            "manual table": ["report", "pipeline_counts:Item", "-o", tmp_path / "r.html"]}[case]
    if case == "bad output":
        pipeline.Square.populate()
    rc, _, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("djhpc: error: "), err
    assert not (tmp_path / "r.html").exists()
    if case == "no history":
        assert "no completions recorded for Square yet" in err


# ---------------------------------------------------------------------------- axes: round numbers
@pytest.mark.parametrize(("span", "intervals", "integer", "step"), [
    (10, 5, False, 2), (1, 5, False, 0.2), (7, 5, False, 2), (0.07, 5, False, 0.02), (1234, 5, False, 500),
    (100, 5, False, 20), (3, 5, True, 1), (0.4, 5, True, 1), (82, 5, True, 20), (0, 5, False, 1)])
def test_nice_step_is_1_2_or_5_times_a_power_of_ten(span, intervals, integer, step):
    assert nice_step(span, intervals, integer=integer) == pytest.approx(step)


def test_value_axis_ends_on_the_first_round_number_above_the_data():
    assert value_axis(82, integer=True) == [0, 20, 40, 60, 80, 100]
    assert value_axis(7) == [0, 2, 4, 6, 8]
    assert value_axis(0.3) == pytest.approx([0, 0.1, 0.2, 0.3])
    assert value_axis(0) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    for high in [0.013, 0.9, 1, 1.01, 3.7, 9.99, 10, 11, 49, 51, 99.5, 101, 740, 1001, 12345, 9.9e6]:
        ticks = value_axis(high)
        step = ticks[1] - ticks[0]
        mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
        assert round(mantissa, 6) in (1, 2, 5), (high, step)
        assert ticks[-1] >= high > ticks[-2] and len(ticks) <= 6, (high, ticks)


def test_number_labels_have_the_decimals_their_step_needs():
    assert [number_label(v, 0.1) for v in (0, 0.1, 0.3)] == ["0.0", "0.1", "0.3"]
    assert [number_label(v, 500) for v in (0, 1500)] == ["0", "1,500"]
    assert number_label(0.05, 0.05) == "0.05"


def test_clock_ticks_fall_on_round_local_times():
    t0 = dt.datetime(2024, 5, 6, 12, 3, 17).astimezone().timestamp()
    for span, step, fmt in ((600, 120, "%H:%M"), (45, 10, "%H:%M:%S"), (5 * 3600, 3600, "%H:%M"),
                            (2.2, 0.5, "%H:%M:%S.%f"), (3 * 86400, 43200, "%m-%d %H:%M")):
        ticks, got = clock_ticks(t0, t0 + span)
        assert got == fmt and 2 <= len(ticks) <= 7, (span, ticks)
        assert all(t0 <= t <= t0 + span for t in ticks)
        assert [round(b - a, 6) for a, b in zip(ticks[:-1], ticks[1:], strict=True)] == [step] * (len(ticks) - 1)
        local = dt.datetime.fromtimestamp(ticks[0]).astimezone()
        since_midnight = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        assert round(since_midnight / step, 6) % 1 == 0, (span, local)


def test_duration_labels_and_histogram_ticks_are_round():
    assert [duration_label(v) for v in (0, 0.5, 2, 30, 120, 5400, 7200, 172800)] == [
        "0", "500 ms", "2 s", "30 s", "2 min", "1.5 h", "2 h", "2 d"]
    chart = histogram_chart([1.0, 3.5, 12.0, 37.0], 7.0, 30.0)
    assert [t["label"] for t in chart["xticks"]] == ["0", "10 s", "20 s", "30 s", "40 s"]
    for tick in chart["xticks"]:  # every label inside the chart: the ends pulled in by their anchor
        half = len(tick["label"]) * 3.3
        left = {"start": 0, "middle": half, "end": 2 * half}[tick["anchor"]]
        assert 0 <= tick["x"] - left and tick["x"] - left + 2 * half <= chart["width"], tick
    assert [t["label"] for t in chart["yticks"]] == ["0", "1"]
    assert sum(b["count"] for b in chart["bars"]) == 4
    assert [t["label"] for t in histogram_chart([0.02, 0.3, 0.7], 0.3, 0.7)["xticks"]] == [
        "0", "200 ms", "400 ms", "600 ms", "800 ms"]


# ---------------------------------------------------------------------------- failures in the timeline
def test_failed_makes_are_read_from_the_jobs_table_and_drawn(pipeline, db, schema_name, monkeypatch):
    build_run(pipeline, db, schema_name, monkeypatch)
    from djhpc.report import FAILED, build_context

    ctx = build_context(pipeline.Square)
    timeline = ctx["timeline"]
    failed = timeline["failed"]
    assert ctx["failures_drawn"] == 3 and len(failed) == 3
    assert sum(f["title"].startswith("node-b 900_2: failed at ") for f in failed) == 1
    assert sum("bad item" in f["title"] and "item=3" in f["title"] for f in failed) == 1
    assert any("MemoryError: out of memory" in f["title"] for f in failed)
    assert timeline["failed_fill"] == FAILED and FAILED not in {b["fill"] for b in timeline["bars"]}
    assert timeline["slow_fill"] != FAILED and all(f["x"] >= timeline["left"] for f in failed)
    lanes = {(lane["host"], lane["task"]): lane["count"] for lane in timeline["lanes"]}
    assert lanes[("node-b", "900_2")] == "12, 1 failed" and lanes[("node-a", "900_1")] == "12"


def test_a_retried_failure_stays_in_the_timeline(pipeline, monkeypatch):
    """A key retried within its attempts: every failed attempt is drawn, not only the last."""
    pipeline.Item.insert([(1, 1), (2, 2)])
    monkeypatch.setenv("DJHPC_TEST_FAIL", "2")
    pipeline.Square.populate(reserve_jobs=True, suppress_errors=True, max_attempts=3)
    monkeypatch.setenv("DJHPC_TEST_FAIL", "")
    from djhpc.report import build_context

    ctx = build_context(pipeline.Square)
    assert ctx["progress"].error == 1 and len(ctx["timeline"]["failed"]) == 3


# ---------------------------------------------------------------------------- in Chromium at 800 and 1400 px
MEASURE = """<script>
(function () {
  var out = {vw: window.innerWidth, doc: document.documentElement.scrollWidth, charts: [],
             failed: document.querySelectorAll("svg.chart rect.failed").length,
             slow: document.querySelectorAll("svg.chart rect.slow").length};
  document.querySelectorAll("svg.chart").forEach(function (svg) {
    var box = svg.getBoundingClientRect(), parent = svg.parentElement.getBoundingClientRect();
    var view = svg.viewBox.baseVal, outside = [];
    svg.querySelectorAll("text").forEach(function (t) {
      var b = t.getBBox();
      if (b.x < -0.5 || b.y < -0.5 || b.x + b.width > view.width + 0.5 || b.y + b.height > view.height + 0.5)
        outside.push(t.textContent);
    });
    out.charts.push({label: svg.getAttribute("aria-label"), left: box.left, right: box.right, width: box.width,
                     parent: parent.width, outside: outside});
  });
  var pre = document.createElement("pre");
  pre.id = "measured";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def measure_in_chromium(tmp_path, html: str, width: int) -> dict:
    """Chart boxes and label boxes as Chromium lays the page out ``width`` px wide (the measuring script is added
    to a copy: the report itself has no script)."""
    probe = tmp_path / f"probe-{width}.html"
    probe.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, f"--window-size={width},1200", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    return json.loads(html_lib.unescape(found.group(1)))


def longest_grey_run(rows, bpp: int) -> tuple[int, int]:
    """(start, end) of the longest horizontal run of dark grey pixels in a screenshot: a chart's axis line."""
    best = (0, 0)
    for row in rows:
        start = None
        for i in range(0, len(row), bpp):
            r, g, b = row[i], row[i + 1], row[i + 2]
            grey = r == g == b and r <= 0xC0
            if grey and start is None:
                start = i // bpp
            if (not grey or i + bpp >= len(row)) and start is not None:
                end = i // bpp if not grey else i // bpp + 1
                if end - start > best[1] - best[0]:
                    best = (start, end)
                start = None
    return best


def real_run(tmp_path) -> tuple[Path, dict]:
    """A real populate through the CLI on SQLite: 120 keys, 3 workers as array tasks 1-3 of job 4242, keys 7, 40,
    41 and 99 failing, makes of 20-120 ms."""
    url = f"sqlite:///{tmp_path}/run.db"
    env = cli_env(f"report_{uuid.uuid4().hex[:8]}", tmp_path, DJHPC_DATABASE_URL=url,
                  PYTHONPATH=f"{PIPELINES}{os.pathsep}{ROOT}", DJHPC_TEST_FAIL="7,40,41,99", DJHPC_TEST_SLEEP=0.02,
                  DJHPC_TEST_SLEEP_MAX=0.12)
    fill = subprocess.run([sys.executable, "-c", "import pipeline_counts as p; p.Item.insert([(i, i) for i in "
                           "range(120)])"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert fill.returncode == 0, fill.stderr
    workers = [subprocess.Popen([*DJHPC, "work", "pipeline_counts:Square"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**env, "DJHPC_JOB_ID": "4242", "DJHPC_TASK_ID": str(t),
                                                                "DJHPC_TASK_COUNT": "3", "DJHPC_SCHEDULER": "local"})
               for t in (1, 2, 3)]
    assert sorted(w.wait(timeout=300) for w in workers) != [0, 0, 0], "no worker met a failing key"
    return tmp_path / "run.db", env


DJHPC = [sys.executable, "-m", "djhpc.cli.main"]


@pytest.mark.chromium
def test_report_of_a_real_run_fits_800_fills_1400_and_draws_its_failures(tmp_path):
    _, env = real_run(tmp_path)
    out_file = tmp_path / "report.html"
    made = subprocess.run([*DJHPC, "report", "pipeline_counts:Square", "-o", out_file], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0 and made.stdout.strip() == f"wrote {out_file}", made.stderr
    html = out_file.read_text(encoding="utf-8")
    assert "<script" not in html and html.count('class="failed"') == 4, "the four failed makes are drawn"
    assert "#e15759" not in html and 'class="slow"' in html and "slower than p95" in html

    for width in (800, 1400):
        seen = measure_in_chromium(tmp_path, html, width)
        assert seen["vw"] == width and seen["doc"] <= width, f"the page scrolls sideways at {width} px: {seen}"
        assert seen["failed"] == 4 and seen["slow"] >= 1
        assert len(seen["charts"]) == 4
        for chart in seen["charts"]:
            assert chart["left"] >= 0 and chart["right"] <= width, (width, chart)
            assert abs(chart["width"] - chart["parent"]) <= 1, f"{chart['label']} does not fill its column"
            assert chart["outside"] == [], f"labels cut at the edge of {chart['label']}: {chart['outside']}"
        if width == 1400:
            assert min(c["width"] for c in seen["charts"]) >= 1100, "the charts stay narrow on a wide screen"

        png = tmp_path / f"report-{width}.png"
        shot = chromium(tmp_path, f"--screenshot={png}", f"--window-size={width},3600", out_file.as_uri())
        assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
        w, _, bpp, rows = decode_png(png.read_bytes())
        assert w == width
        colours = collections.Counter(r[i:i + 3] for r in rows for i in range(0, len(r), bpp))
        assert colours[bytes.fromhex(FAILED[1:])] >= 4 * 8, f"failed makes not on screen at {width} px"
        assert colours[bytes.fromhex(SLOW[1:])] > 0, f"slow makes not on screen at {width} px"
        start, end = longest_grey_run(rows, bpp)  # an axis line: inside the page, as long as the column allows
        assert 16 <= start and end <= width - 16, f"an axis runs to the window's edge at {width} px: {start}-{end}"
        assert end - start >= 0.8 * (min(width, 1200) - 32) * (WIDTH - LEFT - RIGHT) / WIDTH, (width, start, end)


# ---------------------------------------------------------------------------- a whole pipeline (issue 19)
ROW_CELLS = re.compile(r'<tr class="table-row">(.*?)</tr>', re.S)


def _cells(row_html: str) -> list[str]:
    return [html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row_html,
                                                                                      re.S)]


@pytest.fixture
def chain(backend, db, schema_name, tmp_path):
    """chain.py made by `djhpc work chain.py` (session 2's Motion fails), two sessions added after it."""
    return filled_chain(tmp_path / "project", backend, schema_name)


def test_pipeline_report_numbers_without_a_browser(chain, monkeypatch):
    from djhpc.pipeline import load_pipeline
    from djhpc.pipework import targets_for
    from djhpc.report import build_pipeline_context

    monkeypatch.setenv("DJHPC_TEST_SCHEMA", chain.schema)
    try:
        pipeline = load_pipeline("chain.py", base=chain.folder)
        ctx = build_pipeline_context(pipeline, targets_for(pipeline))
    finally:
        sys.modules.pop("djhpc_target_chain", None)
    rows = ctx["pipeline"]["rows"]
    assert [(r["table"], r["depends_on"], r["done"], r["ready"], r["failed"], r["waiting"], r["blocked"])
            for r in rows] == [("Motion", "—", "5 / 8", "2", "1", "0", "0")] + [
        (t, ", ".join(PARENTS[t]), "5 / 8", "0", "0", "3", "1") for t in TABLES[1:]]
    assert ctx["pipeline"]["blocked"] == "4 keys blocked by failures upstream (Segment 1, Trace 1, Quality 1, " \
                                        "Summary 1)"
    tables = {t["table"]: t for t in ctx["tables"]}
    assert list(tables) == list(TABLES) and all(t["rows_drawn"] == 5 for t in tables.values())
    assert [(e["type"], e["count"]) for e in tables["Motion"]["errors"]] == [("ValueError", "1")]
    stats = dict(tables["Summary"]["stats"])
    assert (stats["Blocked by failures upstream"], stats["Waiting for inputs"], stats["Keys once upstream is made"]) \
        == ("1", "3", "8")


@pytest.mark.chromium
def test_pipeline_report_has_a_row_per_table_in_chromium(chain, tmp_path):
    out_file = tmp_path / "chain.html"
    made = chain.djhpc("report", "chain.py", "-o", out_file)
    assert made.returncode == 0 and made.stdout.strip() == f"wrote {out_file}", made.stderr
    html = out_file.read_text(encoding="utf-8")
    for needle in ("<script", "http://", "https://", "<link", "@import", " src="):
        assert needle not in html, f"{needle!r} in the page: it must be self-contained"
    assert html.count("<svg") == 4 * len(TABLES)  # each table's four charts

    dom = chromium(tmp_path, "--dump-dom", out_file.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    rows = [_cells(r) for r in ROW_CELLS.findall(text)]
    # Table, Depends on, Done, Ready, Running, Failed, Waiting, Blocked (then rate, ETA, p95)
    assert [r[:8] for r in rows] == [["Motion", "—", "5 / 8", "2", "0", "1", "0", "0"]] + [
        [t, ", ".join(PARENTS[t]), "5 / 8", "0", "0", "0", "3", "1"] for t in TABLES[1:]], rows
    assert [r[9] for r in rows] == ["no workers running"] + ["waiting for upstream"] * 4
    assert "4 keys blocked by failures upstream (Segment 1, Trace 1, Quality 1, Summary 1)" in text
    headings = re.findall(r"<h2>(.*?)</h2>", text)
    assert headings == ["Tables", *TABLES], headings
    for t in TABLES:  # each table's own sections, anchored from its row
        assert f'<section id="table-{t}" class="table-report">' in text and f'href="#table-{t}"' in text
        assert f'id="table-{t}-timeline"' in text and f'aria-label="{t}: timeline of makes"' in text
    assert text.count("<h3>Errors</h3>") == 5 and "session &lt;n&gt;: the recording is corrupt" in text

    seen = measure_in_chromium(tmp_path, html, 800)
    assert seen["doc"] <= 800, f"the page scrolls sideways at 800 px: {seen}"
    assert len(seen["charts"]) == 4 * len(TABLES) and seen["failed"] == 1  # Motion's failed make in its timeline
    for c in seen["charts"]:
        assert c["left"] >= 0 and c["right"] <= 800 and c["outside"] == [], c

    png = tmp_path / "chain.png"
    shot = chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,2000", out_file.as_uri())
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    _, _, bpp, pixels = decode_png(png.read_bytes())
    colours = collections.Counter(r[i:i + 3] for r in pixels[::2] for i in range(0, len(r), bpp * 2))
    assert colours[b"\xff\xff\xff"] < 0.97 * sum(colours.values()), "the screenshot is (nearly) blank"
    assert colours[bytes.fromhex("c0392b")] > 0, "the failed and blocked counts are not drawn in red"


def test_pipeline_report_limited_and_bad_input(chain, tmp_path):
    out_file = tmp_path / "below.html"
    made = chain.djhpc("report", "chain.py", "--downstream-of", "Trace", "-o", out_file)
    assert made.returncode == 0, made.stderr
    rows = [_cells(r) for r in ROW_CELLS.findall(out_file.read_text(encoding="utf-8"))]
    assert [r[:8] for r in rows] == [["Trace", "Segment", "5 / 8", "0", "0", "0", "3", "1"],
                                     ["Summary", "Trace, Quality", "5 / 8", "0", "0", "0", "3", "1"]]
    fresh = ChainProject.create(tmp_path / "fresh", f"sqlite:///{tmp_path}/fresh.db", "fresh")
    fresh.add_sessions([1])
    out = fresh.djhpc("report", "chain.py", "-o", tmp_path / "none.html")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "no completions recorded for any table of pipeline" in lines[0]
    assert not (tmp_path / "none.html").exists()
