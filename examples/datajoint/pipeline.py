"""Example pipeline written with DataJoint (2.x, and 0.14 alike): subjects, 200 recording sessions, one analysis each.

Nothing in it knows djhpc: `djhpc submit pipeline.py:Analysis` fills Analysis with a SLURM array, where DataJoint's
own `Analysis.populate()` would run it in one process. Analysis.make takes about half a second (a stand-in for real
work; EXAMPLE_MAKE_SECONDS scales it) and one session, r1/7, fails on purpose so that `djhpc jobs errors` has
something to show (EXAMPLE_FIXED=1 "repairs" it). The schema is djhpc_dj_example unless EXAMPLE_SCHEMA names another.
"""

import math
import os
import random
import time

import datajoint as dj

schema = dj.Schema(os.environ.get("EXAMPLE_SCHEMA", "djhpc_dj_example"))

CORRUPT = {"subject": "r1", "session_id": 7}


@schema
class Subject(dj.Lookup):
    definition = """
    subject : varchar(16)
    ---
    species : varchar(32)
    """
    contents = [("m1", "mouse"), ("m2", "mouse"), ("m3", "mouse"), ("r1", "rat")]


@schema
class Session(dj.Manual):
    definition = """
    # one recording session
    -> Subject
    session_id : smallint unsigned
    ---
    duration_s : double       # length of the recording
    n_units    : tinyint unsigned
    """


@schema
class Analysis(dj.Computed):
    definition = """
    # firing rates of one session
    -> Session
    ---
    mean_rate : double        # spikes/s, mean over units
    """

    class Unit(dj.Part):
        definition = """
        -> master
        unit : tinyint unsigned
        ---
        rate : double         # spikes/s
        """

    def make(self, key):
        duration, n_units = (Session & key).fetch1("duration_s", "n_units")
        if key == CORRUPT and os.environ.get("EXAMPLE_FIXED") != "1":
            raise ValueError(f"corrupt recording in session {key['subject']}/{key['session_id']}: "
                             f"the header promises {n_units} units, the file holds none")
        rng = random.Random(f"{key['subject']}/{key['session_id']}")
        time.sleep(rng.uniform(0.25, 0.75) * float(os.environ.get("EXAMPLE_MAKE_SECONDS", "1")))
        rates = [rng.lognormvariate(math.log(5.0), 0.8) for _ in range(n_units)]
        self.insert1(dict(key, mean_rate=sum(rates) / len(rates)))
        self.Unit.insert([dict(key, unit=i, rate=r) for i, r in enumerate(rates)])
