"""Create the example's tables and ingest its sessions (15 per subject): `python setup.py`.

Run it again at any time: sessions already there are skipped.
"""

import random

from pipeline import MotionCorrection, Session, Subject

SESSIONS_PER_SUBJECT = 15


def ingest():
    rng = random.Random(1)
    rows = [dict(subject=subject, session_id=i, n_frames=rng.choice([9000, 18000, 27000]),
                 frame_rate=rng.choice([15.0, 30.0]), depth_um=round(rng.uniform(150, 400)))
            for subject in Subject.fetch("subject") for i in range(1, SESSIONS_PER_SUBJECT + 1)]
    Session.insert(rows, skip_duplicates=True)
    remaining, total = MotionCorrection().progress()
    print(f"{len(Subject())} subjects, {len(Session())} sessions; {remaining} of {total} sessions to process")


if __name__ == "__main__":
    ingest()
