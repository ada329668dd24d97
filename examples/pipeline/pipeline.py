"""Example of a whole pipeline for djhpc: two-photon imaging sessions, six computed tables, one of them on a GPU.

    Session -> MotionCorrection -> Segmentation (GPU) -> Traces -> Events -+-> Summary
            -> Behavior -----------------------------------------------------+

`djhpc submit` (the target in djhpc.yaml is this module) populates every computed table key by key: a session's
Segmentation can start as soon as its MotionCorrection is made. Each make is a short sleep (a stand-in for real
work; EXAMPLE_MAKE_SECONDS scales it) that stores deterministic numbers. MotionCorrection of session m2/9 fails on
purpose, which blocks that session's Segmentation, Traces, Events and Summary but nothing else (EXAMPLE_FIXED=1
"repairs" it).
"""

import math
import os
import random
import time

import djhpc as dj

schema = dj.Schema(os.environ.get("EXAMPLE_SCHEMA", "djhpc_pipeline_example"))

BROKEN = {"subject": "m2", "session_id": 9}


def rng_for(table: str, key: dict) -> random.Random:
    """The same numbers for the same table and session on every run."""
    return random.Random(f"{table}/{key['subject']}/{key['session_id']}")


def compute(rng: random.Random, low: float, high: float) -> None:
    """Stand in for the real computation: low to high seconds, times EXAMPLE_MAKE_SECONDS."""
    time.sleep(rng.uniform(low, high) * float(os.environ.get("EXAMPLE_MAKE_SECONDS", "1")))


@schema
class Subject(dj.Lookup):
    definition = """
    subject  : varchar(16)
    ---
    genotype : varchar(32)
    """
    contents = [("m1", "GCaMP6s"), ("m2", "GCaMP6s"), ("m3", "GCaMP6f"), ("m4", "GCaMP6f")]


@schema
class Session(dj.Manual):
    definition = """
    # one two-photon imaging session
    -> Subject
    session_id : smallint unsigned
    ---
    n_frames   : int unsigned
    frame_rate : float            # Hz
    depth_um   : float            # imaging depth below the pia
    """


@schema
class MotionCorrection(dj.Computed):
    definition = """
    # rigid registration of the movie to a template
    -> Session
    ---
    x_shift_rms : float           # pixels
    y_shift_rms : float           # pixels
    """

    def make(self, key):
        n_frames = (Session & key).fetch1("n_frames")
        rng = rng_for("motion", key)
        compute(rng, 1.0, 2.0)
        if key == BROKEN and os.environ.get("EXAMPLE_FIXED") != "1":
            raise ValueError(f"session {key['subject']}/{key['session_id']}: 250 of {n_frames} frames are blank "
                             "(shutter closed?); the movie cannot be registered")
        self.insert1(dict(key, x_shift_rms=rng.uniform(0.2, 3.0), y_shift_rms=rng.uniform(0.2, 3.0)))


@schema
class Behavior(dj.Computed):
    definition = """
    # running on the treadmill, from the wheel encoder (needs no imaging)
    -> Session
    ---
    running_fraction : float      # of the session
    mean_speed       : float      # cm/s while running
    """

    def make(self, key):
        rng = rng_for("behavior", key)
        compute(rng, 0.5, 1.0)
        self.insert1(dict(key, running_fraction=rng.uniform(0.1, 0.7), mean_speed=rng.uniform(5.0, 25.0)))


@schema
class Segmentation(dj.Computed):
    definition = """
    # cells found in the registered movie
    -> MotionCorrection
    ---
    n_cells : smallint unsigned
    """
    resources = {"partition": "gpu"}  # djhpc submit runs this table on the gpu partition, the others on the default

    class Cell(dj.Part):
        definition = """
        -> master
        cell : smallint unsigned
        ---
        area_um2 : float
        """

    def make(self, key):
        rng = rng_for("segmentation", key)
        compute(rng, 2.0, 3.0)
        n_cells = rng.randint(20, 60)
        self.insert1(dict(key, n_cells=n_cells))
        self.Cell.insert([dict(key, cell=c, area_um2=rng.uniform(60.0, 200.0)) for c in range(n_cells)])


@schema
class Traces(dj.Computed):
    definition = """
    # fluorescence of every cell, as dF/F
    -> Segmentation
    ---
    mean_dff : float
    """

    class Trace(dj.Part):
        definition = """
        -> master
        -> Segmentation.Cell
        ---
        dff : float                # mean dF/F
        snr : float
        """

    def make(self, key):
        rng = rng_for("traces", key)
        compute(rng, 0.5, 1.0)
        rows = [dict(key, cell=c, dff=rng.lognormvariate(math.log(0.3), 0.5), snr=rng.uniform(2.0, 12.0))
                for c in (Segmentation.Cell & key).fetch("cell")]
        self.insert1(dict(key, mean_dff=sum(r["dff"] for r in rows) / len(rows)))
        self.Trace.insert(rows)


@schema
class Events(dj.Computed):
    definition = """
    # calcium events detected in the traces
    -> Traces
    ---
    rate : float                  # events/s, mean over cells
    """

    class Cell(dj.Part):
        definition = """
        -> master
        -> Traces.Trace
        ---
        n_events : int unsigned
        """

    def make(self, key):
        n_frames, frame_rate = (Session & key).fetch1("n_frames", "frame_rate")
        rng = rng_for("events", key)
        compute(rng, 0.5, 1.0)
        seconds = n_frames / frame_rate
        rows = [dict(key, cell=t["cell"], n_events=int(seconds * 0.01 * t["snr"] * rng.uniform(0.5, 1.5)))
                for t in (Traces.Trace & key).fetch(as_dict=True)]
        self.insert1(dict(key, rate=sum(r["n_events"] for r in rows) / len(rows) / seconds))
        self.Cell.insert(rows)


@schema
class Summary(dj.Computed):
    definition = """
    # activity against running, one row per session: needs Events and Behavior
    -> Events
    -> Behavior
    ---
    rate_running : float          # events/s while running
    rate_still   : float          # events/s at rest
    """

    def make(self, key):
        rate = (Events & key).fetch1("rate")
        running = (Behavior & key).fetch1("running_fraction")
        rng = rng_for("summary", key)
        compute(rng, 0.1, 0.3)
        gain = 1.0 + rng.uniform(0.2, 1.0)  # cells fire more while the animal runs
        still = rate / (running * gain + (1.0 - running))
        self.insert1(dict(key, rate_running=still * gain, rate_still=still))
