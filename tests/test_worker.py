"""djhpc.worker (``djhpc work``) in this process: the exit code and the log line when make itself raises what a
stop signal would raise. Real stop signals to a worker process are in tests/test_reliability.py."""

from __future__ import annotations

import logging

import djhpc as dj
from djhpc import worker


def test_a_keyboard_interrupt_raised_by_make_is_its_keys_error_and_the_worker_exits_75(schema, tmp_path, caplog):
    """Under djhpc work a SIGINT raises djhpc's Interrupted (the key goes back); a KeyboardInterrupt can only come
    from make itself, and is then that key's error, as in populate() (DataJoint's "KeyboardInterrupt")."""

    @schema
    class Source(dj.Manual):
        definition = """
        n : int
        """

    @schema
    class Stopper(dj.Computed):
        definition = """
        -> Source
        """

        def make(self, key):
            raise KeyboardInterrupt

    Source.insert([(i,) for i in range(3)])
    with caplog.at_level(logging.WARNING, logger="djhpc.worker"):
        code = worker.work(Stopper, worker.WorkOptions(log_path=str(tmp_path / "keys.log")))
    assert code == worker.EXIT_INTERRUPTED
    row = schema.jobs.fetch1()  # the key whose make raised it; the rest went back
    assert row["status"] == "error" and row["error_message"] == "KeyboardInterrupt"
    assert "make raised KeyboardInterrupt: its key is an error" in caplog.text
    assert "\terror\tKeyboardInterrupt" in (tmp_path / "keys.log").read_text()
