"""djhpc.utils, djhpc.plugin and djhpc.admin: DataJoint's helper modules (answers checked against DataJoint 0.14.10)."""

from __future__ import annotations

import pytest

import djhpc as dj
from djhpc import plugin, utils


def test_camel_case():
    assert utils.is_camel_case("AllGroups") and not utils.is_camel_case("All_Groups")
    assert not utils.is_camel_case("TestΣ") and not utils.is_camel_case("allGroups")
    assert utils.from_camel_case("AllGroups") == "all_groups"
    with pytest.raises(dj.DataJointError, match="must be alphanumeric in CamelCase"):
        utils.from_camel_case("repNames")
    assert utils.to_camel_case("This_is_Mixed") == "ThisIsMixed" and utils.to_camel_case("hello") == "Hello"
    assert utils.get_master("`s`.`m__p`") == "`s`.`m`" and utils.get_master("`s`.`m`") == ""


def test_user_choice_and_confirm(monkeypatch):
    answers = iter(["maybe", "", "YES"])
    monkeypatch.setattr(utils, "input", lambda prompt: next(answers), raising=False)
    assert utils.user_choice("Go?", default="no") == "no"  # "maybe" asked again, then the default
    assert utils.user_choice("Go?") == "yes"

    def closed(prompt):
        raise EOFError

    monkeypatch.setattr(utils, "input", closed, raising=False)
    with pytest.raises(dj.UsageError, match="no answer can be read from stdin: pass safemode=False"):
        utils.confirm("Commit?", "delete()", "pass safemode=False")


def test_safe_write_and_copy(tmp_path):
    target = tmp_path / "a" / "b.bin"
    utils.safe_write(target, b"one")
    utils.safe_write(target, b"two")  # kept: never overwritten
    assert target.read_bytes() == b"one"
    utils.safe_copy(target, tmp_path / "c.bin")
    assert (tmp_path / "c.bin").read_bytes() == b"one" and not list(tmp_path.rglob("*.saving"))


def test_plugin_digest_and_unverified_cause(tmp_path, monkeypatch):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "data.txt").write_text("café\n")
    assert plugin.hash_pkg(pkgpath=str(tmp_path / "pkg")) == "51ad1acd96ead2654ef409bb708c9c3b4b8c6333"  # DataJoint's
    assert dj.DataJointError("x").__cause__ is None
    monkeypatch.setattr(plugin, "connection_plugins", {"p": {"verified": False, "object": None}})
    assert isinstance(dj.DataJointError("x").__cause__, dj.errors.PluginWarning)


def test_admin_needs_a_server(db):
    if db.is_sqlite:
        with pytest.raises(dj.UsageError, match="needs a MariaDB/MySQL server"):
            dj.set_password("x", connection=db, update_config=False)
    else:
        assert dj.kill_quick("ID = -1", connection=db) == 0
