"""djhpc/__init__.py: ``import djhpc as dj`` reaches DataJoint's submodules by DataJoint's names, as code written
for DataJoint does (element-facemap annotates a function with ``dj.user_tables.TableMeta`` at import)."""

import subprocess
import sys

import pytest
from support.env import ROOT

import djhpc as dj
from djhpc import adapters, query, tables
from djhpc.db import connection


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("user_tables", tables),
        ("table", tables),
        ("expression", query),
        ("condition", query),
        ("connection", connection),
        ("attribute_adapter", adapters),
    ],
)
def test_datajoint_module_names_reach_djhpc_modules(name, module):
    assert getattr(dj, name) is module


def test_the_names_datajoint_code_uses_resolve():
    # the attributes DataJoint 0.14.10 has under those names (checked on DataJoint itself)
    assert isinstance(dj.user_tables.TableMeta, type) and isinstance(dj.Manual, dj.user_tables.TableMeta)
    assert dj.table.Table is dj.Table
    assert dj.condition.AndList is dj.AndList
    assert dj.connection.Connection is dj.Connection and dj.connection.conn is dj.conn
    assert dj.attribute_adapter.AttributeAdapter is dj.AttributeAdapter
    assert callable(dj.cli) and dj.diagram.Diagram is dj.Diagram


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'heading_of_nothing'"):
        dj.heading_of_nothing  # noqa: B018
    assert not hasattr(dj, "s3")  # DataJoint's S3 client: djhpc has none, and does not pretend to


def test_a_fresh_import_reaches_them_first():
    # in a fresh process nothing imported djhpc.tables under the other name before
    code = "import djhpc as dj; assert dj.user_tables.TableMeta.__module__ == 'djhpc.tables'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
