"""Several DataJoint Elements activated at import, as a workflow's ``pipeline.py`` does, for djhpc's pipeline
targets (tests/test_pipeline_elements.py): ``djhpc work workflow_pipeline:imaging`` names the Element module this
one activated. The schemas' prefix comes from $DJHPC_ELEMENTS_PREFIX; DataJoint's settings from DJ_HOST/DJ_USER/
DJ_PASS. ``report()`` gives, for each Element module, what djhpc's pipeline loader and pipeline_progress see.
"""

from __future__ import annotations

import os

import element_workflow as wf

PREFIX = os.environ["DJHPC_ELEMENTS_PREFIX"]
# element_workflow's pipelines, declared (their inserts wait at the generator's yield)
DECLARED = {name: wf.PIPELINES[name](PREFIX) for name in (
    "element-calcium-imaging", "element-array-ephys (acute)", "element-facemap", "element-event",
    "element-deeplabcut")}
for _pipeline in DECLARED.values():
    next(_pipeline)

from element_array_ephys import ephys_acute as ephys  # noqa: E402  (activated above, as a pipeline.py's imports)
from element_array_ephys import ephys_report  # noqa: E402
from element_calcium_imaging import imaging, imaging_report, scan  # noqa: E402
from element_deeplabcut import model, train  # noqa: E402
from element_event import event, trial  # noqa: E402
from element_facemap import facial_behavior_estimation as facemap  # noqa: E402

MODULES = (imaging, scan, imaging_report, ephys, ephys_report, facemap, event, trial, model, train)


def report() -> dict:
    """Per Element module: its pipeline's tables in order, parents, depths and progress rows (empty tables);
    then element-event's inserts (a behaviour recording, an event, a trial) and its progress rows again."""
    from djhpc.pipeline import load, load_pipeline

    out = {}
    for module in MODULES:
        pipeline = load_pipeline(module.__name__)
        out[module.__name__] = dict(
            tables=[t.__name__ for t in pipeline.tables],
            parents={t.__name__: [p.__name__ for p in pipeline.parents(t)] for t in pipeline.tables},
            depth={t.__name__: pipeline.depth(t) for t in pipeline.tables},
            progress=progress(module.__name__),
        )
    targets = {}
    for target in ("workflow_pipeline:imaging", "workflow_pipeline:imaging.schema", "workflow_pipeline:scan"):
        pipeline = load(target)
        targets[target] = dict(tables=[t.__name__ for t in pipeline.tables], label=pipeline.label)
    downstream = load_pipeline("element_calcium_imaging.imaging", downstream_of=["Segmentation"])
    targets["downstream of Segmentation"] = dict(tables=[t.__name__ for t in downstream.tables])
    try:
        DECLARED["element-event"].send(True)
    except StopIteration:
        pass
    filled = {m: progress(m) for m in ("element_event.event", "element_event.trial")}
    return dict(modules=out, targets=targets, filled=filled)


def progress(module: str) -> list[dict]:
    """pipeline_progress of one Element module's pipeline."""
    from djhpc.pipeline import load_pipeline
    from djhpc.pipeprogress import pipeline_progress
    from djhpc.pipework import targets_for

    pipeline = load_pipeline(module)
    return pipeline_progress(pipeline, targets_for(pipeline))
