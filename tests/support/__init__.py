"""Helpers shared by the test modules: the one place a test imports a helper from.

Test modules import helpers from here (``from support.pipeline import load_pipeline``), never from another
test module or from a conftest.py; fixtures come only from the conftest.py files.

- ``support.env``: the repository root, the MariaDB URL, skip-or-fail, worker environments, binaries
- ``support.pipeline``: the counting test pipeline (tests/pipelines/pipeline_counts.py) and its call log
- ``support.cluster``: a project folder, the ``djhpc`` command, the MariaDB schema as root sees it, SLURM
- ``support.scripts``: job scripts run under a fake ``djhpc``, and their directives read as sbatch reads them
- ``support.jobstate``: a jobs table in every status, and the CLI run in this process
- ``support.reservations``: Reservations driven step by step
- ``support.queries``: query results in a form that compares easily (key_set)
- ``support.blobcheck``: blob values described exactly (JSON), in this interpreter and in DataJoint's
"""
