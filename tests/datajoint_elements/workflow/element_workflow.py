"""One DataJoint Elements pipeline, activated as the Elements' own ``workflow-*`` packages do, in this process.

    python -m element_workflow PIPELINE PREFIX fresh|reopen

This module is the pipeline's linking module (``linking_module=__name__``, as each workflow's ``pipeline.py``
passes): it holds the upstream tables (Subject, Session, Experimenter, Equipment, ...) and the functions
(``get_*_root_data_dir``...) the Elements ask for. ``import datajoint`` is DataJoint itself or djhpc through the
suite's name shim, whichever the runner put first on PYTHONPATH; the database is whatever DataJoint's
configuration (DJ_HOST/DJ_USER/DJ_PASS) or djhpc's (DJHPC_DATABASE_URL) names.

Prints one JSON line: how far it went (import: it stopped before every schema was declared; declared: the
inserts or the queries failed; inserted, or reopened: all went through), its schemas, the queries' answers and the
first error.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import json
import sys
import tempfile
import traceback

LINK = sys.modules[__name__]
DATA_DIR = tempfile.gettempdir()


def get_experiment_root_data_dir():
    return [DATA_DIR]


get_ephys_root_data_dir = get_imaging_root_data_dir = get_facemap_root_data_dir = get_dlc_root_data_dir = (
    get_experiment_root_data_dir
)


def get_session_directory(session_key):
    return DATA_DIR


def get_image_files(scan_key, file_type):
    return []


def get_facemap_video_files(video_key):
    return []


ANSWERS: dict = {}


def answer(name: str, value) -> None:
    """Keep what a query gave, for the runner to compare with DataJoint's answer to the same query."""
    ANSWERS[name] = value


def link(**objects) -> None:
    """Put what an Element asks of its linking module into this module, as a workflow's pipeline.py does."""
    LINK.__dict__.update(objects)


def core(prefix: str, *, with_session: bool = True):
    """element-lab, element-animal's subject and element-session, as every workflow starts."""
    from element_animal import subject
    from element_lab import lab

    lab.activate(prefix + "lab")
    link(Lab=lab.Lab, Location=lab.Location, Project=lab.Project, Protocol=lab.Protocol, Source=lab.Source)
    link(User=lab.User, Experimenter=lab.User, Equipment=lab.Device, Device=lab.Device)
    subject.activate(prefix + "subject", linking_module=__name__)
    link(Subject=subject.Subject)
    session = None
    if with_session:
        from element_session import session_with_datetime as session

        session.activate(prefix + "session", linking_module=__name__)
        link(Session=session.Session)
    return lab, subject, session


def insert_core(lab, subject, session) -> None:
    """A little data through the tables' documented insert paths (the Elements' tutorials' first cells)."""
    lab.Lab.insert1(dict(lab="rodent", lab_name="Rodent lab", address="1 Road", time_zone="UTC+0"))
    lab.User.insert1(dict(user="alice", user_email="alice@example.org", user_cellphone="555"))
    lab.Source.insert1(dict(source="vendor", source_name="A vendor"))
    lab.ProtocolType.insert1(dict(protocol_type="IACUC"))
    lab.Protocol.insert1(dict(protocol="p1", protocol_type="IACUC", protocol_description="x"))
    subject.Subject.insert1(
        dict(subject="m1", sex="F", subject_birth_date="2023-01-02", subject_description="a mouse"),
        skip_duplicates=True,
    )
    subject.Subject.User.insert1(dict(subject="m1", user="alice"))
    if session is not None:
        key = dict(subject="m1", session_datetime=datetime.datetime(2023, 5, 6, 7, 8, 9))
        session.Session.insert1(key)
        session.SessionExperimenter.insert1(dict(key, user="alice"))
        session.SessionDirectory.insert1(dict(key, session_dir="m1/s1"))
        assert len(session.Session & {"subject": "m1"}) == 1


def p_lab(prefix):
    from element_lab import lab

    lab.activate(prefix + "lab")
    if (yield):  # a fresh database: the inserts (reopened, the rows are there)
        lab.Organization.insert1(dict(organization="org", org_name="An org"))
        lab.Lab.insert1(dict(lab="rodent", lab_name="Rodent lab", address="1 Road", time_zone="UTC+0"))
        lab.Lab.Organization.insert1(dict(lab="rodent", organization="org"))
        lab.User.insert([dict(user="alice", user_email="a@x.org"), dict(user="bob", user_email="b@x.org")])
        lab.UserRole.insert1(dict(user_role="PI"))
        lab.LabMembership.insert1(dict(lab="rodent", user="alice", user_role="PI"))
    assert len(lab.User()) == 2 and (lab.LabMembership & {"user": "alice"}).fetch1("user_role") == "PI"
    answer("users", lab.User.fetch(as_dict=True, order_by="user"))
    answer("lab join", (lab.Lab * lab.Lab.Organization).fetch("lab", "organization", "lab_name"))
    answer("project lookup", len(lab.Project()))


def p_lab_project(prefix):
    from element_lab import lab, project

    lab.activate(prefix + "lab")
    link(Lab=lab.Lab, User=lab.User, Protocol=lab.Protocol)
    project.activate(prefix + "project", linking_module=__name__)
    if (yield):  # a fresh database: the inserts (reopened, the rows are there)
        lab.Lab.insert1(dict(lab="rodent", lab_name="Rodent lab", address="1 Road", time_zone="UTC+0"))
        project.Project.insert1(dict(project="p1", project_title="A project", project_start_date="2023-01-01"))
        project.ProjectKeywords.insert1(dict(project="p1", keyword="mouse"))
    assert project.ProjectKeywords.fetch("keyword").tolist() == ["mouse"]
    answer("project", project.Project.fetch1())


def p_animal(prefix):
    from element_animal import genotyping, surgery

    lab, subject, _ = core(prefix, with_session=False)
    surgery.activate(prefix + "surgery", prefix + "subject", linking_module=__name__)
    genotyping.activate(prefix + "genotyping", prefix + "subject", linking_module=__name__)
    if (yield):  # a fresh database: the inserts (reopened, the rows are there)
        insert_core(lab, subject, None)
        subject.Strain.insert1(dict(strain="C57", strain_standard_name="C57BL/6J"))
        subject.Subject.Strain.insert1(dict(subject="m1", strain="C57"))
        surgery.BrainRegion.insert1(dict(region_acronym="VISp", region_name="primary visual"))
    assert (subject.Subject * subject.Subject.Strain).fetch1("strain") == "C57"
    answer("subject", (subject.Subject * subject.Subject.Strain).fetch(as_dict=True))
    answer("tables", sorted(t.split(".")[-1] for t in surgery.schema.list_tables()))


def p_session(prefix):
    lab, subject, session = core(prefix)
    if (yield):  # a fresh database: the inserts (reopened, the rows are there)
        insert_core(lab, subject, session)
    assert len(session.Session * session.SessionExperimenter) == 1
    answer("session", (session.Session * session.SessionExperimenter * session.SessionDirectory).fetch(as_dict=True))


def p_session_with_id(prefix):
    from element_animal import subject
    from element_lab import lab
    from element_session import session_with_id as session

    lab.activate(prefix + "lab")
    link(Lab=lab.Lab, Project=lab.Project, Protocol=lab.Protocol, Source=lab.Source, User=lab.User)
    link(Experimenter=lab.User)
    subject.activate(prefix + "subject", linking_module=__name__)
    link(Subject=subject.Subject)
    session.activate(prefix + "session", linking_module=__name__)
    if (yield):  # a fresh database: the inserts (reopened, the rows are there)
        insert_core(lab, subject, None)
        session.Session.insert1(dict(subject="m1", session_id=1, session_datetime="2023-05-06 07:08:09"))
    assert (session.Session & {"session_id": 1}).fetch1("subject") == "m1"
    answer("session", session.Session.fetch1())


def p_event(prefix):
    from element_event import event, trial

    lab, subject, session = core(prefix)
    trial.activate(prefix + "trial", prefix + "event", linking_module=__name__)
    fresh = yield
    if fresh:  # a fresh database: the inserts (reopened, the rows are there)
        insert_core(lab, subject, session)
    key = (session.Session & {"subject": "m1"}).fetch1("KEY")
    if fresh:
        recording = dict(key, recording_start_time="2023-05-06 07:08:09", recording_duration=60)
        event.BehaviorRecording.insert1(recording, allow_direct_insert=True)  # as element-event's own tests do
        event.EventType.insert1(dict(event_type="go", event_type_description="go cue"), skip_duplicates=True)
        event.Event.insert1(dict(key, event_type="go", event_start_time=1.5), allow_direct_insert=True)
        trial.Trial.insert1(dict(key, trial_id=1, trial_start_time=1.0, trial_stop_time=2.0), allow_direct_insert=True)
    assert len(event.Event & key) == 1
    answer("events", (event.Event * event.EventType).fetch(as_dict=True))
    answer("trial", (trial.Trial & key).fetch1("trial_start_time", "trial_stop_time"))


def ephys(variant):
    def pipeline(prefix):
        probe = importlib.import_module("element_array_ephys.probe")
        module = importlib.import_module(f"element_array_ephys.{variant}")
        import datajoint as dj

        lab, subject, session = core(prefix)

        @lab.schema
        class SkullReference(dj.Lookup):
            definition = """
            skull_reference   : varchar(60)
            """
            contents = zip(["Bregma", "Lambda"])

        link(SkullReference=SkullReference)
        module.activate(prefix + "ephys", prefix + "probe", linking_module=__name__)
        if (yield):  # a fresh database: the inserts (reopened, the rows are there)
            insert_core(lab, subject, session)
            probe.Probe.insert1(dict(probe="17131311651", probe_type="neuropixels 1.0 - 3B"))
            ephys_inserts(probe, module, session)
        assert len(probe.ProbeType()) == 5, "activate inserts the 5 Neuropixels probe types"
        answer("probes", probe.Probe.fetch(as_dict=True))
        assert len(module.AcquisitionSoftware()) == 2
        answer("probe types", probe.ProbeType.fetch("probe_type", order_by="probe_type"))
        answer("electrodes", len(probe.ProbeType.Electrode()))
        electrodes = probe.ProbeType.Electrode & {"probe_type": "neuropixels 1.0 - 3B"}
        answer("3B shanks", electrodes.fetch("shank_col", "y_coord", limit=5, order_by="electrode"))
        answer("methods", module.ClusteringMethod.fetch("clustering_method", order_by="clustering_method"))
        answer("param sets", module.ClusteringParamSet.fetch(as_dict=True, order_by="paramset_idx"))
        answer("electrode config", probe.ElectrodeConfig.fetch(as_dict=True))
        answer("config electrodes", len(probe.ElectrodeConfig.Electrode()))
        answer("insertions", module.ProbeInsertion.fetch(as_dict=True))

    return pipeline


def ephys_inserts(probe, module, session) -> None:
    """element-array-ephys's documented helpers: parameter sets by hash (twice: the second is a no-op), the next
    free index through dj.U().aggr, an electrode configuration of the first 384 electrodes, a probe insertion."""
    params = {"fs": 30000, "fshigh": 150, "minfr_goodchannels": 0.1, "Th": [10, 4], "lam": 10}
    insert = module.ClusteringParamSet.insert_new_params
    if "clustering_method" in inspect.signature(insert).parameters:
        insert(clustering_method="kilosort2", paramset_desc="defaults", params=params, paramset_idx=0)
        insert(clustering_method="kilosort2", paramset_desc="defaults", params=params, paramset_idx=0)
        insert(clustering_method="kilosort3", paramset_desc="next free index", params={"fs": 30000, "Th": [9, 9]})
    else:  # ephys_precluster names it processing_method, and the index comes second
        insert("kilosort2", 0, "defaults", params)
        insert("kilosort2", 0, "defaults", params)
    electrodes = (probe.ProbeType.Electrode & {"probe_type": "neuropixels 1.0 - 3B"} & "electrode < 384").fetch("KEY")
    module.generate_electrode_config("neuropixels 1.0 - 3B", electrodes)
    module.generate_electrode_config("neuropixels 1.0 - 3B", electrodes)  # the same: found by its hash
    session_key = (session.Session & {"subject": "m1"}).fetch1("KEY")
    parent = {k: v for k, v in session_key.items() if k in module.ProbeInsertion.primary_key}  # chronic: Subject
    module.ProbeInsertion.insert1(dict(parent, insertion_number=0, probe="17131311651"))


def calcium_imaging(variant):
    def pipeline(prefix):
        yield from p_calcium_imaging(prefix, importlib.import_module(f"element_calcium_imaging.{variant}"))

    return pipeline


def p_calcium_imaging(prefix, imaging):
    from element_calcium_imaging import scan

    lab, subject, session = core(prefix)
    imaging.activate(prefix + "imaging", prefix + "scan", linking_module=__name__)
    if (yield):  # a fresh database: the inserts (reopened, the rows are there)
        insert_core(lab, subject, session)
        key = (session.Session & {"subject": "m1"}).fetch1("KEY")
        lab.Device.insert1(
            dict(device="scope1", modality="Calcium imaging", description="2p"), ignore_extra_fields=True
        )
        scan.Scan.insert1(dict(key, scan_id=0, device="scope1", acq_software="ScanImage"), ignore_extra_fields=True)
        params = {"fs": 30.0, "tau": 1.25, "nplanes": 1, "diameter": [12, 12], "look_one_level_down": False}
        imaging.ProcessingParamSet.insert_new_params("suite2p", 0, "suite2p defaults", params)
        imaging.ProcessingParamSet.insert_new_params("suite2p", 0, "suite2p defaults", params)  # a no-op by hash
    assert len(imaging.ProcessingMethod()) >= 1 and len(scan.Scan()) == 1
    answer("methods", imaging.ProcessingMethod.fetch(as_dict=True, order_by="processing_method"))
    answer("mask types", sorted(imaging.MaskType.fetch("mask_type")))
    answer("scan", (scan.Scan * lab.Device).fetch1())
    answer("param sets", imaging.ProcessingParamSet.fetch(as_dict=True))


def p_facemap(prefix):
    from element_facemap import facial_behavior_estimation as fbe

    lab, subject, session = core(prefix)
    fbe.activate(prefix + "facemap", linking_module=__name__)
    if (yield):  # a fresh database: the inserts (reopened, the rows are there)
        insert_core(lab, subject, session)
        key = (session.Session & {"subject": "m1"}).fetch1("KEY")
        lab.Device.insert1(dict(device="cam1", modality="Behavior", description="camera"), ignore_extra_fields=True)
        fbe.VideoRecording.insert1(dict(key, recording_id=0, device="cam1"))
        fbe.VideoRecording.File.insert1(dict(key, recording_id=0, file_id=0, file_path="m1/v.avi"))
    assert len(fbe.VideoRecording.File()) == 1
    answer("files", (fbe.VideoRecording * fbe.VideoRecording.File).fetch(as_dict=True))


def p_deeplabcut(prefix):
    # train before model, as workflow-deeplabcut imports them: model's import of its reader is circular
    train = importlib.import_module("element_deeplabcut.train")
    model = importlib.import_module("element_deeplabcut.model")

    lab, subject, session = core(prefix)
    link(train=train)  # model declares "-> [nullable] train.TrainingParamSet"; pipeline.py imports train
    train.activate(prefix + "train", linking_module=__name__)
    model.activate(prefix + "model", linking_module=__name__)
    if (yield):  # a fresh database: the inserts (reopened, the rows are there)
        insert_core(lab, subject, session)
        model.BodyPart.insert1(dict(body_part="nose", body_part_description="the nose"))
        params = {"shuffle": 1, "trainingsetindex": 0, "maxiters": 5, "project_path": "dropped"}
        train.TrainingParamSet.insert_new_params("quick", dict(params))  # index 1: the next after none
        train.TrainingParamSet.insert_new_params("quick", dict(params))  # found by its hash: a no-op
    assert model.BodyPart.fetch("body_part").tolist() == ["nose"]
    answer("body parts", model.BodyPart.fetch(as_dict=True))
    answer("training params", train.TrainingParamSet.fetch(as_dict=True))


PIPELINES = {
    "element-lab": p_lab,
    "element-lab project": p_lab_project,
    "element-animal": p_animal,
    "element-session (datetime)": p_session,
    "element-session (id)": p_session_with_id,
    "element-event": p_event,
    "element-array-ephys (acute)": ephys("ephys_acute"),
    "element-array-ephys (chronic)": ephys("ephys_chronic"),
    "element-array-ephys (no curation)": ephys("ephys_no_curation"),
    "element-array-ephys (precluster)": ephys("ephys_precluster"),
    "element-calcium-imaging": calcium_imaging("imaging"),
    "element-calcium-imaging (no curation)": calcium_imaging("imaging_no_curation"),
    "element-calcium-imaging (preprocess)": calcium_imaging("imaging_preprocess"),
    "element-facemap": p_facemap,
    "element-deeplabcut": p_deeplabcut,
}


def first_error(exc: BaseException) -> str:
    """The error as one line, with the Element's (or DataJoint's/djhpc's) line that raised it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f for f in reversed(frames) if "element_" in f.filename), frames[-1] if frames else None)
    place = f" [{where.filename.rsplit('/', 2)[-2:][-1]}:{where.lineno}]" if where else ""
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {str(exc).splitlines()[0] if str(exc) else ''}{place}"


def main(name: str, prefix: str, mode: str) -> dict:
    """Run the pipeline: "fresh" declares its schemas and inserts; "reopen" activates the schemas another process
    made and filled (as every later session of a workflow does) and reads the same answers."""
    import datajoint as dj  # here, so that the runner can read PIPELINES without DataJoint

    result = dict(pipeline=name, stage="import", error=None)
    try:
        pipeline = PIPELINES[name](prefix)
        next(pipeline)
        result["stage"] = "declared"
        try:
            pipeline.send(mode == "fresh")
        except StopIteration:
            result["stage"] = "inserted" if mode == "fresh" else "reopened"
    except Exception as exc:  # a pipeline that fails is the measurement: report it, never raise
        result["error"] = first_error(exc)
    result["schemas"] = sorted(s[len(prefix) :] for s in dj.list_schemas() if s.startswith(prefix))
    result["answers"] = json.loads(json.dumps(ANSWERS, default=plain))
    return result


def plain(value):
    """A fetched value as JSON: arrays as lists, numpy scalars as numbers, dates and Decimals as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3])), flush=True)
