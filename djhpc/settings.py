"""``dj.config``: DataJoint's settings object, with DataJoint's keys, files and environment variables.

Where a value comes from, highest first:
  1. code: ``dj.config["database.host"] = ...``, ``dj.config.update(...)``, ``dj.config.load(path)``, and for
     the length of a block ``with dj.config(safemode=False, database__host="db"):``
  2. environment, read when the settings are first used: ``DJ_HOST``, ``DJ_USER``, ``DJ_PASS`` (database.host,
     .user, .password), ``DJ_LOG_LEVEL`` (loglevel), ``DJ_AWS_ACCESS_KEY_ID``, ``DJ_AWS_SECRET_ACCESS_KEY``,
     and djhpc's ``DJHPC_SAFEMODE`` (safemode)
  3. one file, as DataJoint reads it: ``dj_local_conf.json`` in the working directory, else
     ``~/.datajoint_config.json``
  4. DataJoint 0.14's defaults

Files are read on first use (not at import), so a broken file is a one-line ``ConfigError`` where it is used.

Which database ``dj.conn()`` with no arguments opens (``config.resolve_database_url``), highest first: a URL or
host given to ``dj.conn``/``--database-url``; ``DJHPC_DATABASE_URL`` (or ``_FILE``); database.* keys set in code;
``DJ_HOST``/``DJ_USER``/``DJ_PASS``/``DJ_PORT``; database.* keys from ``dj_local_conf.json`` (or a file given to
``load``); ``djhpc.yaml``; ``~/.config/djhpc/config.yaml``; database.* keys from ``~/.datajoint_config.json``;
else the SQLite file ``djhpc.db``. Settings made for this project beat the user's; database.* keys left at their
defaults choose nothing, so a project with no settings at all still runs on SQLite. Unlike DataJoint, a missing
user or password is never asked for at a prompt (a batch worker has no terminal): user ``root``, no password.

What djhpc acts on: database.* (the server; ``database.reconnect``, ``database.use_tls``),
``connection.init_function``, ``safemode`` (delete, drop), ``loglevel`` (the ``djhpc`` logger, once set). The
other keys (display.*, fetch_format, stores, cache, query_cache, enable_python_native_blobs, database.prefix, and
DataJoint 2.x's database.database_prefix, jobs.*, provenance.*, ...) are DataJoint's, checked and kept for code
that reads them; djhpc's own behaviour does not follow them yet.

Keys are checked when set: a known key takes values of its type only, and a key that is not DataJoint's but
looks like a misspelling of one (``database.hots``, ``safe_mode``) is refused, naming the right one. Other new
keys are kept as the caller's own, as DataJoint 0.14 keeps them. ``repr`` and ``str`` never show a password or
secret key.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import pprint
from pathlib import Path

from .config import DatabaseURL
from .errors import ConfigError

log = logging.getLogger(__name__)

LOCALCONFIG = "dj_local_conf.json"
GLOBALCONFIG = ".datajoint_config.json"
SECRET_KEYS = ("database.password", "external.aws_secret_access_key")
MASK = "***"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: sections whose keys are all known: a new key in one of them is a misspelling
SECTIONS = ("database", "connection", "display", "jobs", "provenance")
#: the database.* keys that choose the server
SERVER_KEYS = ("database.host", "database.port", "database.user", "database.password")

DEFAULTS: dict = {
    "database.host": "localhost",
    "database.password": None,
    "database.user": None,
    "database.port": 3306,
    "database.reconnect": True,
    "database.use_tls": None,
    "database.prefix": "",
    "connection.init_function": None,
    "connection.charset": "",
    "loglevel": "INFO",
    "safemode": True,
    "fetch_format": "array",
    "display.limit": 12,
    "display.width": 14,
    "display.show_tuple_count": True,
    "enable_python_native_blobs": True,
    "add_hidden_timestamp": False,
    "filepath_checksum_size_limit": None,
    "filepath_checksum_size_limit_insert": None,
    "stores": {},
    "cache": None,
    "query_cache": None,
    "download_path": ".",
    "external.aws_access_key_id": None,
    "external.aws_secret_access_key": None,
    # DataJoint 2.x's keys, with its defaults
    "database.backend": "mysql",
    "database.name": None,
    "database.database_prefix": "",
    "database.create_tables": True,
    "display.diagram_direction": "LR",
    "display.diagram_theme": "auto",
    "jobs.auto_refresh": True,
    "jobs.keep_completed": False,
    "jobs.stale_timeout": 3600,
    "jobs.default_priority": 5,
    "jobs.version_method": None,
    "jobs.allow_new_pk_fields_in_computed_tables": False,
    "jobs.add_job_metadata": False,
    "provenance.capture": False,
    "provenance.source": {},
    "ignore_config_file": False,
}

# Each check returns None when the value fits, else what the key takes (for the message).


def _of(*types, none=False, what=""):
    def check(value):
        if value is None and none:
            return None
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        return None if ok else what

    return check


def _port(value):
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536
    return None if ok else "a port number (an int from 1 to 65535)"


def _choice(*choices):
    def check(value):
        return None if value in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def _stores(value):
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        return "a dict of store name -> dict of store settings"
    return None


def _limit(value):
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "an int ≥ 0"


_STR = _of(str, what="a string")
_STR_OR_NONE = _of(str, none=True, what="a string or None")
_BOOL = _of(bool, what="True or False")
_CHECKS = {
    "database.host": _STR,
    "database.password": _STR_OR_NONE,
    "database.user": _STR_OR_NONE,
    "database.port": _port,
    "database.reconnect": _BOOL,
    "database.use_tls": _of(bool, dict, none=True, what="True, False, None or a dict of TLS options"),
    "database.prefix": _STR,
    "connection.init_function": _STR_OR_NONE,
    "connection.charset": _STR,
    "loglevel": _choice(*LOG_LEVELS),
    "safemode": _BOOL,
    "fetch_format": _choice("array", "frame"),
    "display.limit": _limit,
    "display.width": _limit,
    "display.show_tuple_count": _BOOL,
    "enable_python_native_blobs": _BOOL,
    "add_hidden_timestamp": _BOOL,
    "filepath_checksum_size_limit": _of(int, none=True, what="an int or None"),
    "filepath_checksum_size_limit_insert": _of(int, none=True, what="an int or None"),
    "stores": _stores,
    "cache": _of(str, os.PathLike, none=True, what="a folder's path (str or Path) or None"),
    "query_cache": _STR_OR_NONE,
    "download_path": _STR,
    "external.aws_access_key_id": _STR_OR_NONE,
    "external.aws_secret_access_key": _STR_OR_NONE,
    "database.backend": _choice("mysql", "postgresql"),
    "database.name": _STR_OR_NONE,
    "database.database_prefix": _STR,
    "database.create_tables": _BOOL,
    "display.diagram_direction": _choice("LR", "TB"),
    "display.diagram_theme": _STR,
    "jobs.auto_refresh": _BOOL,
    "jobs.keep_completed": _BOOL,
    "jobs.stale_timeout": _limit,
    "jobs.default_priority": _limit,
    "jobs.version_method": _STR_OR_NONE,
    "jobs.allow_new_pk_fields_in_computed_tables": _BOOL,
    "jobs.add_job_metadata": _BOOL,
    "provenance.capture": _BOOL,
    "provenance.source": _of(dict, what="a dict"),
    "ignore_config_file": _BOOL,
}

#: environment variable -> key, as DataJoint maps them (DJHPC_SAFEMODE is djhpc's own)
ENVIRONMENT = {
    "DJ_HOST": "database.host",
    "DJ_USER": "database.user",
    "DJ_PASS": "database.password",
    "DJ_AWS_ACCESS_KEY_ID": "external.aws_access_key_id",
    "DJ_AWS_SECRET_ACCESS_KEY": "external.aws_secret_access_key",
    "DJ_LOG_LEVEL": "loglevel",
}

# where a value came from; a value's rank in choosing the database (config.resolve_database_url)
DEFAULT, ENV, LOCAL, GLOBAL, CODE = "default", "environment", "local file", "global file", "code"


def check(key: str, value) -> None:
    """Raise a one-line ConfigError unless ``value`` fits ``key`` (or ``key`` is a new key of the caller's)."""
    if not isinstance(key, str):
        raise ConfigError(f"dj.config keys are strings like 'database.host' (got {type(key).__name__})")
    test = _CHECKS.get(key)
    if test is None:
        close = difflib.get_close_matches(key, list(_CHECKS), n=1, cutoff=0.8)
        if close or key.split(".", 1)[0] in SECTIONS:
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else "known keys: " + ", ".join(k for k in _CHECKS if k.split(".", 1)[0] == key.split(".", 1)[0])
            )
            raise ConfigError(f"dj.config has no setting '{key}': {hint}")
        return
    wanted = test(value)
    if wanted is not None:
        shown = MASK if key in SECRET_KEYS else repr(value)
        raise ConfigError(f"dj.config['{key}'] must be {wanted} (got {type(value).__name__} {shown})")


def _apply_loglevel(value) -> None:
    logging.getLogger("djhpc").setLevel(value)


class _Settings:
    """The values, where each came from, and whether the files are still to be read: what Config objects hold."""

    def __init__(self, load_files: bool):
        self.conf: dict = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
        self.source: dict = dict.fromkeys(self.conf, DEFAULT)
        self.pending_files = load_files  # the process's settings read their file and the environment on first use


class Config:
    """DataJoint's settings: a mapping of dotted keys, checked when set. As DataJoint's, every ``Config()`` is the
    process's one settings (``dj.config``), and its arguments update them; ``Config.separate()`` makes settings of
    their own (for tests and tools that must leave dj.config alone)."""

    _process: _Settings | None = None

    def __init__(self, *args, **kwargs):
        if Config._process is None:
            Config._process = _Settings(load_files=True)
        self._settings = Config._process
        if args or kwargs:
            self.update(*args, **kwargs)

    @classmethod
    def separate(cls, *args, load_files: bool = False, **kwargs) -> Config:
        """Settings of their own, from the defaults (and, with ``load_files``, the file and environment on first
        use, as dj.config's), then ``args``/``kwargs``; dj.config does not see them."""
        obj = cls.__new__(cls)
        obj._settings = _Settings(load_files)
        if args or kwargs:
            obj.update(*args, **kwargs)
        return obj

    # the state lives in _settings, so that every view of the process's settings sees a change, even one that
    # replaces the whole dict (a ``with dj.config(...)`` block putting the values back)
    _conf = property(lambda self: self._settings.conf, lambda self, v: setattr(self._settings, "conf", v))
    _source = property(lambda self: self._settings.source, lambda self, v: setattr(self._settings, "source", v))
    _pending_files = property(lambda self: self._settings.pending_files,
                              lambda self, v: setattr(self._settings, "pending_files", v))

    # ------------------------------------------------------------------ loading
    def _ready(self) -> dict:
        if self._pending_files:
            self._load_startup()
            self._pending_files = False  # after it worked: a broken file stays an error wherever it is used
        return self._conf

    def _load_startup(self):
        """The first of ``dj_local_conf.json`` (working directory) and ``~/.datajoint_config.json``, then the
        environment, as DataJoint does at import."""
        for path, source in ((Path(LOCALCONFIG), LOCAL), (Path.home() / GLOBALCONFIG, GLOBAL)):
            if path.is_file():
                self._read(path, source)
                break
        env = os.environ
        for name, key in ENVIRONMENT.items():
            if env.get(name) is not None:
                self._set(key, env[name], ENV, origin=f"environment variable {name}")
        safemode = env.get("DJHPC_SAFEMODE")
        if safemode is not None:
            self._set("safemode", safemode.lower() not in ("0", "false", "no", "off"), ENV)

    def _read(self, path: Path, source: str):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from e
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ConfigError(
                f"{path} line {getattr(e, 'lineno', '?')}: not valid JSON: fix the file or remove it"
            ) from e
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: must be a JSON object of settings, not a {type(data).__name__}")
        for key, value in data.items():
            self._set(key, value, source, origin=str(path))
        log.info("settings read from %s", path.resolve())

    def _set(self, key, value, source, origin=""):
        try:
            check(key, value)
        except ConfigError as e:
            raise ConfigError(f"{origin}: {e}" if origin else str(e)) from None
        self._conf[key] = value
        self._source[key] = source
        if key == "loglevel" and source != DEFAULT:
            _apply_loglevel(value)

    def load(self, filename=None):
        """Update the settings from a JSON file (``dj_local_conf.json`` when None); its values count as the
        project's settings."""
        self._ready()
        self._read(Path(filename if filename is not None else LOCALCONFIG), LOCAL)

    # ------------------------------------------------------------------ saving
    def save(self, filename, verbose: bool = False):
        """Write every setting to ``filename`` as JSON (readable by its owner only when it holds a secret)."""
        conf = self._ready()
        path = Path(filename)
        secret = any(conf.get(k) for k in SECRET_KEYS)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(conf, f, indent=4)
            if secret:
                os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
        except OSError as e:
            raise ConfigError(f"cannot write {path}: {e.strerror}") from e
        except TypeError as e:
            raise ConfigError(f"cannot save the settings to {path}: a value is not JSON ({e})") from e
        (log.info if verbose else log.debug)("saved settings in %s", path)

    def save_local(self, verbose: bool = False):
        """Write the settings to ``dj_local_conf.json`` in the working directory."""
        self.save(LOCALCONFIG, verbose)

    def save_global(self, verbose: bool = False):
        """Write the settings to ``~/.datajoint_config.json``."""
        self.save(Path.home() / GLOBALCONFIG, verbose)

    # ------------------------------------------------------------------ mapping
    def __getitem__(self, key):
        return self._ready()[key]

    def __setitem__(self, key, value):
        self._ready()
        self._set(key, value, CODE)

    def __delitem__(self, key):
        """A known key goes back to its default; a key of the caller's goes."""
        conf = self._ready()
        if key in DEFAULTS:
            default = DEFAULTS[key]
            self._set(key, dict(default) if isinstance(default, dict) else default, DEFAULT)
        else:
            del conf[key]
            del self._source[key]

    def __iter__(self):
        return iter(self._ready())

    def __len__(self):
        return len(self._ready())

    def __contains__(self, key):
        return key in self._ready()

    def get(self, key, default=None):
        return self._ready().get(key, default)

    def keys(self):
        return self._ready().keys()

    def items(self):
        return self._ready().items()

    def values(self):
        return self._ready().values()

    def update(self, *args, **kwargs):
        """Set several keys at once, each checked (DataJoint's ``dj.config.update({...})``)."""
        self._ready()
        for key, value in dict(*args, **kwargs).items():
            self._set(key, value, CODE)

    def __eq__(self, other):
        if isinstance(other, Config):
            other = other._ready()
        return isinstance(other, dict) and self._ready() == other

    __hash__ = None

    def source(self, key: str) -> str:
        """Where the value of ``key`` came from: "code", "environment", "local file", "global file" or
        "default"."""
        self._ready()
        return self._source.get(key, DEFAULT)

    def __repr__(self):
        shown = {k: (MASK if k in SECRET_KEYS and v else v) for k, v in self._ready().items()}
        return pprint.pformat(shown, indent=4)

    __str__ = __repr__

    # ------------------------------------------------------------------ temporary settings
    @contextlib.contextmanager
    def __call__(self, **kwargs):
        """``with dj.config(safemode=False, database__host="db"):`` sets keys ('__' for '.') for the block."""
        conf = self._ready()
        saved = dict(conf), dict(self._source)
        try:
            for key, value in kwargs.items():
                self._set(key.replace("__", "."), value, CODE)
            yield self
        finally:
            level_before = saved[0].get("loglevel")
            self._conf, self._source = saved
            if conf.get("loglevel") != level_before and self._source.get("loglevel") != DEFAULT:
                _apply_loglevel(level_before)

    # ------------------------------------------------------------------ the database
    def database_url(self, scope: str) -> DatabaseURL | None:
        """The MySQL/MariaDB server the database.* keys name, when the most specific of those keys set came from
        ``scope`` ("code", "local file" or "global file"; see the module docstring); else None."""
        conf = self._ready()
        rank = (CODE, LOCAL, GLOBAL)
        sources = [self._source.get(k) for k in SERVER_KEYS if self._source.get(k) in rank]
        if not sources or min(sources, key=rank.index) != scope:
            return None
        return server_url(
            conf["database.host"], conf["database.user"], conf["database.password"], conf["database.port"]
        )


def server_url(host: str, user: str | None, password: str | None, port: int | None = None) -> DatabaseURL:
    """DataJoint's host (``name``, ``name:port``, ``[v6]:port``), user and password as a MySQL DatabaseURL;
    a port in the host wins over ``port``, as in DataJoint."""
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"database host must be a name like 'db.example.org' or 'db:3306' (got {host!r})")
    name, _, port_text = host.strip().rpartition(":") if _has_port(host) else (host.strip(), "", "")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"database host '{host}' has a port that is not a port number: write host:3306")
        port = int(port_text)
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        raise ConfigError(f"database port must be an int from 1 to 65535 (got {port!r})")
    for what, value in (("user", user), ("password", password)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"database {what} must be a string (got {type(value).__name__})")
    return DatabaseURL("mysql", host=name.strip("[]"), port=port or 3306, user=user or "root", password=password or "")


def _has_port(host: str) -> bool:
    host = host.strip()
    if host.startswith("["):
        return "]:" in host
    return host.count(":") == 1  # a bare IPv6 address has several


#: the process's settings: ``dj.config``
config = Config()
