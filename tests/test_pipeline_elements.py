"""DataJoint Elements as a yardstick for pipeline targets: public pipelines nobody here wrote, activated under
DataJoint 0.14.10 as a workflow's pipeline.py does (tests/datajoint_elements/workflow/workflow_pipeline.py), each
Element module loaded as a pipeline: its computed tables in dependency order with the parents the Elements'
definitions give, and pipeline_progress's rows. Then ``djhpc work`` in fresh processes naming an Element through the
workflow module that activates it (``workflow_pipeline:imaging``), and the one-line errors for an Element's module
named alone (its schema is not activated there) and for a workflow module without computed tables of its own.

Needs what tests/datajoint_elements needs (tests/cluster/ensure-datajoint-elements.sh) and MariaDB: without them
the test skips with the reason, under CI=true it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import pytest
from datajoint_elements import run
from support.env import NO_MYSQL, ROOT, mysql_available, unavailable

# Each Element module's pipeline in the order djhpc gives it (upstream first, definition order among equals), each
# table with its pipeline parents, read from the Elements' definitions (the wheels in run.WHEELS). A Manual table
# in between counts (Curation, ClusteringTask, ...); a foreign key into a part table counts as one into its master;
# a table of another module is not in the pipeline, so it is no parent.
EXPECTED = {
    "element_calcium_imaging.imaging": {  # imaging.py
        "Processing": [],  # -> ProcessingTask (Manual: -> scan.Scan, -> ProcessingParamSet); key_source ScanInfo
        "MotionCorrection": ["Processing"],  # -> Curation (Manual: -> Processing)
        "Segmentation": ["Processing"],  # -> Curation as well: beside MotionCorrection, not below it
        "MaskClassification": ["Segmentation"],  # -> Segmentation; its part -> Segmentation.Mask
        "Fluorescence": ["Segmentation"],  # -> Segmentation; Trace -> Segmentation.Mask
        "Activity": ["Fluorescence"],  # -> Fluorescence; key_source Fluorescence * ProcessingParamSet (a Lookup)
        "ProcessingQualityMetrics": ["Fluorescence"],  # -> Fluorescence; parts -> Segmentation.Mask, Fluorescence.Trace
    },
    "element_calcium_imaging.scan": {  # scan.py
        "ScanInfo": [],  # -> Scan (Manual)
        "ScanQualityMetrics": ["ScanInfo"],  # -> ScanInfo.Field, a part of ScanInfo
    },
    "element_calcium_imaging.imaging_report": {  # both -> imaging tables, another module's
        "ScanLevelReport": [],  # -> imaging.Segmentation
        "TraceReport": [],  # -> imaging.Segmentation.Mask; key_source & imaging.Activity
    },
    "element_array_ephys.ephys_acute": {  # ephys_acute.py
        "EphysRecording": [],  # -> ProbeInsertion (Manual); probe.ElectrodeConfig, AcquisitionSoftware
        "LFP": ["EphysRecording"],  # -> EphysRecording
        "Clustering": ["EphysRecording"],  # -> ClusteringTask (Manual: -> EphysRecording, -> ClusteringParamSet)
        "CuratedClustering": ["Clustering"],  # -> Curation (Manual: -> Clustering)
        "WaveformSet": ["CuratedClustering"],  # -> CuratedClustering; parts -> CuratedClustering.Unit
        "QualityMetrics": ["CuratedClustering"],  # -> CuratedClustering
    },
    "element_array_ephys.ephys_report": {  # all -> ephys tables, another module's
        "ProbeLevelReport": [],  # -> ephys.CuratedClustering
        "UnitLevelReport": [],  # -> ephys.CuratedClustering.Unit
        "QualityMetricReport": [],  # -> QualityMetricSet (Manual: -> ephys.QualityMetrics)
    },
    "element_facemap.facial_behavior_estimation": {
        "RecordingInfo": [],  # -> VideoRecording (Manual); key_source VideoRecording & VideoRecording.File
        "FacemapProcessing": [],  # -> FacemapTask (Manual: -> VideoRecording): not below RecordingInfo
        "FacialSignal": ["FacemapProcessing"],  # -> FacemapProcessing
    },
    "element_event.event": {"Event": []},  # -> BehaviorRecording (Manual), -> EventType (Lookup)
    "element_event.trial": {
        "Block": [],  # -> event.BehaviorRecording
        "Trial": [],  # -> event.BehaviorRecording
        "BlockTrial": ["Block", "Trial"],  # -> Block, -> Trial
        "TrialEvent": ["Trial"],  # -> Trial, -> event.Event (another module's)
    },
    "element_deeplabcut.model": {  # three roots: nothing links them
        "RecordingInfo": [],  # -> VideoRecording (Manual)
        "ModelEvaluation": [],  # -> Model (Manual)
        "PoseEstimation": [],  # -> PoseEstimationTask (Manual: -> VideoRecording, -> Model)
    },
    "element_deeplabcut.train": {"ModelTraining": []},  # -> TrainingTask (Manual)
}
ZERO = dict(total=0, done=0, remaining=0, ready=0, reserved=0, error=0, ignore=0, pending=0)
SECONDS = 120


def expected_depths(parents: dict) -> dict:
    depth: dict = {}
    for table, above in parents.items():  # upstream first: each parent's depth is known
        depth[table] = 1 + max((depth[p] for p in above), default=-1)
    return depth


@pytest.fixture
def elements(tmp_path):
    """(the environment of the Elements' venv with djhpc on its path, a run of python there), the schemas'
    prefix dropped afterwards."""
    try:
        paths = run.wheels()
    except run.ElementsError as exc:
        unavailable(str(exc))
    if not mysql_available():
        unavailable(NO_MYSQL)
    prefix = f"djpt{secrets.token_hex(3)}_"
    env = run.child_env("datajoint", "mariadb", tmp_path)  # DataJoint itself, not the suite's name shim
    env["PYTHONPATH"] = os.pathsep.join([str(run.HERE / "workflow"), str(ROOT), *map(str, paths)])
    env["DJHPC_ELEMENTS_PREFIX"] = prefix

    def python(*argv) -> subprocess.CompletedProcess:
        return subprocess.run([run.PYTHON, *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=SECONDS, stdin=subprocess.DEVNULL)

    try:
        yield python
    finally:
        run.drop_prefix(prefix)


def json_out(out: subprocess.CompletedProcess):
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def rows_by_table(rows: list[dict]) -> dict:
    return {r["table"]: r for r in rows}


@pytest.mark.slow
@pytest.mark.mysql
def test_elements_as_pipeline_targets(elements):
    found = json_out(elements("-c", "import json, workflow_pipeline as w; print(json.dumps(w.report()))"))

    assert list(found["modules"]) == list(EXPECTED)
    foreseen = []
    for module, parents in EXPECTED.items():
        got = found["modules"][module]
        assert got["tables"] == list(parents), module
        assert got["parents"] == parents, module
        assert got["depth"] == expected_depths(parents), module
        # empty tables: a row per table, upstream first, all zeros; keys to come foreseen (0 of them) where the
        # table has DataJoint's default key source, None where a custom key_source hides them
        assert [r["table"] for r in got["progress"]] == list(parents), module
        for row in got["progress"]:
            assert {k: row[k] for k in ZERO} == ZERO, (module, row)
            assert (row["waiting"], row["blocked"]) in ((0, 0), (None, None)), (module, row)
            foreseen.append(row["waiting"] == 0)
    assert any(foreseen) and not all(foreseen), "both default and custom key sources are among the Elements"

    imaging = list(EXPECTED["element_calcium_imaging.imaging"])
    assert found["targets"] == {
        "workflow_pipeline:imaging": dict(tables=imaging, label="imaging"),
        "workflow_pipeline:imaging.schema": dict(tables=imaging, label="imaging"),
        "workflow_pipeline:scan": dict(tables=["ScanInfo", "ScanQualityMetrics"], label="scan"),
        "downstream of Segmentation": dict(tables=imaging[imaging.index("Segmentation"):]),
    }

    # element-event's inserts (as its own tests make them): a behaviour recording of one session, a "go" event at
    # 1.5 s, trial 1 from 1.0 s to 2.0 s
    event = rows_by_table(found["filled"]["element_event.event"])
    assert {k: event["Event"][k] for k in ("total", "done", "remaining", "ready")} == dict(total=1, done=1,
                                                                                          remaining=0, ready=0)
    trial = rows_by_table(found["filled"]["element_event.trial"])
    counts = {t: (r["total"], r["done"], r["ready"], r["waiting"], r["blocked"]) for t, r in trial.items()}
    assert counts == {
        "Block": (1, 0, 1, 0, 0),  # the recording is its key source; no block inserted; nothing above it to come
        "Trial": (1, 1, 0, 0, 0),  # its one recording has trials
        "BlockTrial": (0, 0, 0, None, None),  # Block * Trial: no block yet
        "TrialEvent": (1, 0, 1, None, None),  # Trial * event.Event
    }

    # a fresh process, as a cluster task starts: the workflow module activates the Elements, the Element named
    # after the colon is the pipeline
    out = elements("-m", "djhpc.cli.main", "work", "workflow_pipeline:imaging")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "imaging: 0 made, 0 failed" in out.stderr
    # element-event's makes raise NotImplementedError (its rows are inserted directly): both ready keys fail, once
    out = elements("-m", "djhpc.cli.main", "work", "workflow_pipeline:trial")
    assert out.returncode == 1 and "trial: 0 made, 2 failed" in out.stderr, out.stderr[-3000:]
    after = rows_by_table(json_out(elements(
        "-c", "import json, workflow_pipeline as w; print(json.dumps(w.progress('element_event.trial')))")))
    assert {t: (r["ready"], r["error"]) for t, r in after.items()} == {
        "Block": (0, 1), "Trial": (0, 0), "BlockTrial": (0, 0), "TrialEvent": (0, 1)}

    for target, message in {
        "element_calcium_imaging.imaging": "djhpc: error: pipeline element_calcium_imaging.imaging: the schema of "
        "Processing, MotionCorrection, Segmentation, MaskClassification, Fluorescence, Activity, "
        "ProcessingQualityMetrics is not activated in this process: name the workflow module that activates it and "
        "this module after a colon (e.g. pipeline.py:imaging)",
        "workflow_pipeline": "djhpc: error: pipeline workflow_pipeline declares no Computed or Imported table; "
        "modules it imports do: name workflow_pipeline:ephys or workflow_pipeline:ephys_report or "
        "workflow_pipeline:imaging",
    }.items():
        out = elements("-m", "djhpc.cli.main", "work", target)
        assert out.returncode == 2, (target, out.stderr[-3000:])
        errors = [line for line in out.stderr.splitlines() if line.startswith("djhpc: error:")]
        assert errors == [message] and "Traceback" not in out.stderr, (target, out.stderr[-3000:])
