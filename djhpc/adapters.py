"""DataJoint's attribute types beyond SQL's, as a definition names them: ``<adapter>`` (an AttributeAdapter found
in the schema's context), ``blob@store`` and ``attach@store`` (content in an external store, a UUID in the row),
``attach`` (file name and content in the row), ``filepath@store`` (a file of the store's stage, tracked).

Pure: a type's text becomes the SQL type its column has (DataJoint's: ``binary(16)`` for an external one,
``longblob`` for ``attach``) and a ``Codec`` that says how values go in and out. The work with files, stores and
the ``~external_<store>`` tables is in external.py, which binds each codec to its schema when the table is declared.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ADAPTED_TYPE_SWITCH, FILEPATH_FEATURE_SWITCH, DefinitionError

__all__ = ["AttributeAdapter", "Codec", "parse_special"]

_STORE = r"(?P<store>[a-z][\-\w]*)"
_EXTERNAL = re.compile(rf"(?P<kind>blob|attach|filepath)@{_STORE}", re.I)
_ADAPTED = re.compile(r"<(?P<name>[^<>]+)>")


class AttributeAdapter:
    """Base of a user-defined attribute type, as DataJoint's: ``attribute_type`` names the type it is stored as
    (``"longblob"``, ``"blob@store"``, ``"filepath@store"``...), ``put`` turns a value into one of that type,
    ``get`` turns it back. An instance is named in a definition as ``<name>``, the name it has in the schema's
    context (with DataJoint's switch on: ``DJ_SUPPORT_ADAPTED_TYPES=TRUE``)."""

    @property
    def attribute_type(self):
        raise NotImplementedError("Undefined attribute adapter")

    def get(self, value):
        raise NotImplementedError("Undefined attribute adapter")

    def put(self, obj):
        raise NotImplementedError("Undefined attribute adapter")


@dataclass(eq=False)
class Codec:
    """How one attribute's values are stored: ``kind`` "blob", "attach" or "filepath" (or None: the adapted type's
    own SQL type), ``store`` the external store (None: in the row), ``adapter`` the AttributeAdapter applied first.

    ``runtime`` is set when the table is declared (external.bind): it knows the schema's connection and database
    and does the storing."""

    text: str  # as written in the definition, and as DataJoint keeps it in the column's comment
    kind: str | None
    store: str | None = None
    adapter: AttributeAdapter | None = None
    runtime: object = None

    def put(self, value):
        """A value as the column takes it (stored in the store first, when the type is external)."""
        return self._runtime("store a value").put(self, value)

    def get(self, raw, *, squeeze: bool = False, download_path="."):
        """The column's value as the user gets it (read from the store, or saved under ``download_path``)."""
        return self._runtime("read a value").get(self, raw, squeeze=squeeze, download_path=download_path)

    def _runtime(self, what: str):
        if self.runtime is None:
            raise DefinitionError(f"an attribute of type {self.text} cannot {what} before its table is declared in a "
                                  "schema: decorate the class with a dj.Schema")
        return self.runtime


def parse_special(text: str, where: str, context: Mapping | None) -> tuple[str, Codec] | None:
    """(the SQL type text to parse instead, its Codec) for a DataJoint special type; None for any other type."""
    m = _EXTERNAL.fullmatch(text)
    if m:
        kind, store = m.group("kind").lower(), m.group("store")
        if kind == "filepath" and not _switched_on(FILEPATH_FEATURE_SWITCH):
            raise DefinitionError(f"filepath@{store}{where} is DataJoint's experimental type: set the environment "
                                  f"variable {FILEPATH_FEATURE_SWITCH}=TRUE to use it, as DataJoint 0.14 asks")
        return "uuid", Codec(text=f"{kind}@{store}", kind=kind, store=store)
    if text.lower() == "attach":
        return "longblob", Codec(text="attach", kind="attach")
    m = _ADAPTED.fullmatch(text)
    if m:
        return _adapted(m.group("name").strip(), where, context)
    return None


def _adapted(name: str, where: str, context: Mapping | None) -> tuple[str, Codec]:
    if not _switched_on(ADAPTED_TYPE_SWITCH):
        raise DefinitionError(f"<{name}>{where} is an attribute adapter, DataJoint 0.14's experimental type: set "
                              f"the environment variable {ADAPTED_TYPE_SWITCH}=TRUE to use it")
    adapter = (context or {}).get(name)
    if adapter is None:
        raise DefinitionError(f"attribute adapter <{name}>{where} is not defined: put an AttributeAdapter instance "
                              f"named {name} in the schema's context")
    if not isinstance(adapter, AttributeAdapter):
        raise DefinitionError(f"attribute adapter <{name}>{where} must be an instance of dj.AttributeAdapter, not "
                              f"{type(adapter).__name__}")
    stored = adapter.attribute_type
    if not isinstance(stored, str) or not re.match(r"\w", stored) or _ADAPTED.fullmatch(stored.strip()):
        raise DefinitionError(f"attribute adapter <{name}>{where} has attribute_type {stored!r}: name a DataJoint "
                              "type such as 'longblob' or 'blob@store'")
    inner = parse_special(stored.strip(), where, context)
    if inner is None:
        return stored.strip(), Codec(text=f"<{name}>", kind=None, adapter=adapter)
    sql, codec = inner
    return sql, Codec(text=f"<{name}>", kind=codec.kind, store=codec.store, adapter=adapter)


def _switched_on(variable: str) -> bool:
    return os.environ.get(variable, "FALSE").upper() == "TRUE"
