"""djhpc report: one self-contained HTML page for a pipeline with failures on several hosts, rendered by
headless Chromium (screenshot decoded: not blank, the charts' colours drawn; DOM text: every section,
host names, error messages); everything escaped; no history is one line and exit 2."""

from __future__ import annotations

import collections
import struct
import subprocess
import time
import zlib

import pytest
from support.env import need_binary

from djhpc.cli.main import main
from djhpc.history import History
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
    slow = [b for b in ctx["timeline"]["bars"] if b["fill"] == "#e15759"]
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
