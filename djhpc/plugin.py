"""DataJoint's plugins: packages that register under the entry-point groups ``datajoint_plugins.connection`` and
``datajoint_plugins.datatype``, each verified by its signature, as DataJoint 0.14 finds them.

A plugin is verified when its package folder's digest (``hash_pkg``, git's tree hash of its files) carries a
valid signature (``<name>.sig`` in its distribution's metadata) under the public key ``datajoint.pub`` installed
beside this package. djhpc ships no key, and ``cryptography`` is optional: without either, every plugin found is
"unverified", and every djhpc error then says so in its cause (``errors.PluginWarning``), as DataJoint's do.
``dj.config["plugin"] = {"connection": ["name", ...]}`` limits which packages of a group are loaded.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from importlib.metadata import distribution, entry_points
from pathlib import Path

from .settings import config

log = logging.getLogger(__name__)

GROUP = "datajoint_plugins.{category}"
PUBLIC_KEY = Path(__file__).resolve().parent / "datajoint.pub"


def _git_hash(text: str) -> str:
    """git's object id of a blob holding ``text``."""
    data = text.encode()
    return hashlib.sha1(b"blob %d\0" % len(text) + data).hexdigest()


def hash_pkg(*, pkgpath) -> str:
    """The digest a plugin's signature signs: git's blob id of a listing of the package's files (mode, each file's
    blob id, path from the package's parent), sorted by path; compiled files are left out."""
    root = Path(pkgpath).absolute()
    files = sorted(p for p in root.rglob("*") if p.is_file() and "pycache" not in str(p))
    listing = "".join(f"100644 {_git_hash(p.read_text())} 0\t{p.relative_to(root.parent)}\n" for p in files)
    return _git_hash(listing)


def verify(*, pubkey_path, data: str, signature: str) -> None:
    """Raise ``cryptography``'s InvalidSignature unless ``signature`` (base64, RSA-PSS over SHA-256) signs ``data``
    under the PEM public key at ``pubkey_path``."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key = serialization.load_pem_public_key(Path(pubkey_path).read_bytes())
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    key.verify(base64.b64decode(signature.encode()), data.encode(), pss, hashes.SHA256())


def _verified(package: str) -> bool:
    """Whether the installed ``package``'s signature checks out; False, with a warning, for any reason it does not."""
    try:
        dist = distribution(package)
        signature = dist.read_text(f"{package}.sig")
        if signature is None:
            raise FileNotFoundError(f"{package}.sig")
        data = hash_pkg(pkgpath=str(Path(dist.locate_file(""), package)))
        verify(pubkey_path=str(PUBLIC_KEY), data=data, signature=signature)
    except Exception as exc:  # missing signature, key or cryptography, a bad signature: all mean unverified
        log.warning("Unverified plugin `%s` detected (%s).", package, type(exc).__name__)
        return False
    log.info("Verified plugin `%s` detected.", package)
    return True


def _wanted(category: str, package: str) -> bool:
    chosen = config.get("plugin")
    return not isinstance(chosen, dict) or category not in chosen or package in chosen[category]


def _import_plugins(category: str) -> dict:
    """name -> {"object": the entry point, "verified": bool} for each plugin of ``category``."""
    group = GROUP.format(category=category)
    found = entry_points()
    points = found.select(group=group) if hasattr(found, "select") else found.get(group, [])
    plugins = {}
    for point in points:
        package = point.module.split(".")[0]
        if _wanted(category, package):
            plugins[point.name] = {"object": point, "verified": _verified(package)}
    return plugins


connection_plugins = _import_plugins("connection")
type_plugins = _import_plugins("datatype")
