"""Create the example's tables and ingest its sessions (50 per subject): `python setup.py`.

Run it again at any time: sessions already there are skipped.
"""

import random

from pipeline import Analysis, Session, Subject

SESSIONS_PER_SUBJECT = 50


def ingest():
    rng = random.Random(1)
    rows = [dict(subject=subject, session_id=i, duration_s=round(rng.uniform(600, 3600), 1), n_units=rng.randint(3, 40))
            for subject, _ in Subject.contents for i in range(1, SESSIONS_PER_SUBJECT + 1)]
    Session.insert(rows, skip_duplicates=True)
    remaining, total = Analysis().progress(display=False)
    print(f"{len(Subject())} subjects, {len(Session())} sessions; {remaining} of {total} analyses to run")


if __name__ == "__main__":
    ingest()
