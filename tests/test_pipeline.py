"""A module (or module:schema) as TARGET (pipeline.py): its computed tables in dependency order, their resource
classes, and the bad input refused in one line with exit 2 before anything runs."""

from __future__ import annotations

import textwrap
import uuid

import pytest
from support.chain import ChainProject

from djhpc.errors import UsageError
from djhpc.pipeline import is_pipeline_target, load, load_pipeline


@pytest.fixture
def chain(tmp_path, monkeypatch):
    schema = "chain_" + uuid.uuid4().hex[:8]
    project = ChainProject.create(tmp_path / "project", f"sqlite:///{tmp_path}/chain.db", schema)
    for k, v in project.env.items():
        if k.startswith("DJHPC_"):
            monkeypatch.setenv(k, v)
    import djhpc as dj

    dj.conn(project.url, reset=True)
    monkeypatch.chdir(project.folder)
    yield project
    import sys

    for name in [m for m in sys.modules if m.startswith("djhpc_target_")]:
        sys.modules.pop(name)


def names(tables):
    return [t.__name__ for t in tables]


def test_a_module_is_a_pipeline_in_dependency_order(chain):
    assert is_pipeline_target("chain.py") and not is_pipeline_target("chain.py:Motion")
    p = load_pipeline("chain.py")
    assert names(p.tables) == ["Motion", "Segment", "Trace", "Quality", "Summary"]
    assert {t.__name__: names(p.parents(t)) for t in p.tables} == {
        "Motion": [], "Segment": ["Motion"], "Trace": ["Segment"], "Quality": ["Motion"],
        "Summary": ["Trace", "Quality"]}
    assert {t.__name__: p.depth(t) for t in p.tables} == {"Motion": 0, "Segment": 1, "Trace": 2, "Quality": 1,
                                                          "Summary": 3}
    assert names(p.ordered("deepest")) == ["Summary", "Trace", "Quality", "Segment", "Motion"]
    assert names(p.ordered("upstream"))[0] == "Motion"
    assert p.label == "chain"


def test_module_schema_and_module_class_targets(chain):
    assert names(load("chain.py:schema").tables) == ["Motion", "Segment", "Trace", "Quality", "Summary"]
    assert load("chain.py:Motion").__name__ == "Motion"


def test_limits_tables_and_downstream_of(chain):
    p = load_pipeline("chain.py")
    assert names(p.restrict(tables=["Trace", "Motion"]).tables) == ["Motion", "Trace"]
    assert names(p.restrict(downstream_of=["Segment"]).tables) == ["Segment", "Trace", "Summary"]
    assert names(p.upstream_of(p.restrict(tables=["Summary"]).tables)) == ["Motion", "Segment", "Trace", "Quality"]
    with pytest.raises(UsageError, match="no computed table Segmnt: did you mean Segment"):
        p.restrict(tables=["Segmnt"])


def test_resource_classes_from_the_class_and_djhpc_yaml(chain):
    p = load_pipeline("chain.py")
    assert [(c.name, c.tables) for c in p.classes()] == [("default", ("Motion", "Trace", "Quality", "Summary")),
                                                         ("gpu", ("Segment",))]
    p = load_pipeline("chain.py", table_resources={"Quality": {"partition": "gpu"}, "Motion": {"mem": "8G"}})
    assert [(c.name, c.tables, c.settings) for c in p.classes()] == [
        ("default", ("Motion",), {"mem": "8G"}), ("gpu", ("Segment", "Quality"), {"partition": "gpu"}),
        ("default-2", ("Trace", "Summary"), {})]


def test_conflicting_resources_are_a_usage_error(chain):
    with pytest.raises(UsageError, match=r"Segment: resources conflict: the class sets partition='gpu', "
                                         r"djhpc.yaml's tables.Segment sets partition='cpu'; keep one"):
        load_pipeline("chain.py", table_resources={"Segment": {"partition": "cpu"}})


def write(folder, name, text):
    (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")


def test_bad_pipelines_are_one_line_and_exit_2(chain):
    folder = chain.folder
    chain.add_sessions([0])  # the database exists: no note that a new one was created
    write(folder, "manual.py", """
        import os
        import djhpc as dj
        schema = dj.Schema(os.environ["DJHPC_TEST_SCHEMA"] + "_m")
        @schema
        class Thing(dj.Manual):
            definition = "thing : int"
    """)
    write(folder, "cycle.py", """
        import os
        import djhpc as dj
        schema = dj.Schema(os.environ["DJHPC_TEST_SCHEMA"] + "_c")
        @schema
        class Source(dj.Manual):
            definition = "n : int"
        @schema
        class First(dj.Computed):
            definition = "-> Source"
            @property
            def key_source(self):
                return Source.proj() - Second.proj()
            def make(self, key):
                self.insert1(key)
        @schema
        class Second(dj.Computed):
            definition = "-> First"
            def make(self, key):
                self.insert1(key)
    """)
    cases = {
        ("work", "manual.py"): "pipeline manual.py declares no Computed or Imported table",
        ("work", "cycle.py"): "pipeline cycle.py has a dependency cycle (First -> Second -> First)",
        ("work", "chain.py", "--tables", "Segmnt"): "pipeline chain.py has no computed table Segmnt: did you mean "
                                                   "Segment?",
        ("work", "chain.py:Motion", "--tables", "Motion"): "--tables and --downstream-of need a pipeline TARGET",
        ("work", "nothere.py"): "target file nothere.py does not exist",
    }
    for argv, message in cases.items():
        out = chain.djhpc(*argv)
        assert out.returncode == 2, (argv, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (argv, out.stderr)
        assert "Traceback" not in out.stderr
    assert not chain.calls()


def test_conflicting_resources_from_djhpc_yaml_exit_2(chain):
    chain.add_sessions([0])
    (chain.folder / "djhpc.yaml").write_text(f"target: chain.py\ndatabase: {chain.url}\n"
                                             "tables:\n  Segment: {partition: cpu}\n", encoding="utf-8")
    out = chain.djhpc("work")
    assert out.returncode == 2 and "resources conflict" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    (chain.folder / "djhpc.yaml").write_text(f"target: chain.py\ndatabase: {chain.url}\n"
                                             "tables:\n  Segment: {partiton: gpu}\n", encoding="utf-8")
    out = chain.djhpc("work")
    assert out.returncode == 2 and "tables.Segment: unknown key 'partiton': did you mean 'partition'?" in out.stderr


def test_a_module_a_workflow_imports_is_a_pipeline(chain):
    """An Element's layout: a module whose schema has no name until a workflow module activates it. Named alone
    it gives one line saying so; named after the workflow module (workflow.py:steps) it is the pipeline."""
    import sys

    write(chain.folder, "steps.py", """
        import djhpc as dj
        schema = dj.Schema()
        @schema
        class Recording(dj.Manual):
            definition = "recording : int"
        @schema
        class Sorting(dj.Computed):
            definition = "-> Recording"
            def make(self, key):
                self.insert1(key)
        @schema
        class Curated(dj.Computed):
            definition = "-> Sorting"
            def make(self, key):
                self.insert1(key)
    """)
    write(chain.folder, "workflow.py", """
        import os
        import steps
        steps.schema.activate(os.environ["DJHPC_TEST_SCHEMA"] + "_steps")
    """)
    try:
        with pytest.raises(UsageError, match=r"^pipeline steps: the schema of Sorting, Curated is not activated in "
                                             r"this process: name the workflow module that activates it and this "
                                             r"module after a colon \(e.g. pipeline.py:steps\)$"):
            load_pipeline("steps")
        p = load("workflow.py:steps")
        assert names(p.tables) == ["Sorting", "Curated"] and names(p.parents(p.table("Curated"))) == ["Sorting"]
        assert p.label == "steps" and p.restrict(tables=["Curated"]).label == "steps"
        assert names(load("workflow.py:steps.schema").tables) == ["Sorting", "Curated"]
        assert load("workflow.py:steps.Curated").__name__ == "Curated"
        with pytest.raises(UsageError, match=r"^pipeline workflow.py declares no Computed or Imported table; "
                                             r"modules it imports do: name workflow.py:steps$"):
            load_pipeline("workflow.py")
        with pytest.raises(UsageError, match=r"^pipeline workflow.py:stepz: stepz is not a module or a schema of "):
            load_pipeline("workflow.py:stepz")
        assert load("chain.py:schema").label == "chain"
    finally:
        sys.modules.pop("steps", None)
    # a fresh process, as a cluster task: the workflow module activates the schema, the worker fills both tables
    chain.python("import workflow; workflow.steps.Recording.insert([(1,), (2,)])")
    out = chain.djhpc("work", "workflow.py:steps")
    assert out.returncode == 0 and "steps: 4 made, 0 failed" in out.stderr, out.stderr
