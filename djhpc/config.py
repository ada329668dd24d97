"""Configuration: where the database is, and the project's settings.

Precedence, highest first (``dj.config``'s database.* keys, djhpc/settings.py, take the places marked dj.config):
  1. arguments (``dj.conn(url)``, ``dj.conn(host=..., user=..., password=...)``, ``--database-url``)
  2. environment: ``DJHPC_DATABASE_URL``, ``DJHPC_DATABASE_URL_FILE`` (a 0600 file holding the URL)
  3. dj.config: database.* keys set in code (``dj.config["database.host"] = ...``)
  4. DataJoint's environment: ``DJ_HOST``, ``DJ_USER``, ``DJ_PASS``, ``DJ_PORT``
  5. dj.config: database.* keys from ``dj_local_conf.json`` in the working directory (or ``dj.config.load``)
  6. a project file ``djhpc.yaml``, found upward from the working directory
  7. ``~/.config/djhpc/config.yaml`` (or ``$XDG_CONFIG_HOME/djhpc/config.yaml``)
  8. dj.config: database.* keys from ``~/.datajoint_config.json``
  9. the embedded default: SQLite file ``djhpc.db`` in the working directory

A URL's password is never shown: ``DatabaseURL.redacted`` replaces it, and ``repr`` uses that.
"""

from __future__ import annotations

import difflib
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import yaml

from .errors import ConfigError, UsageError
from .profile import check_scheduler_name, check_section

log = logging.getLogger(__name__)

PROJECT_FILE = "djhpc.yaml"
DEFAULT_SQLITE_FILE = "djhpc.db"
SCHEMES = ("mysql", "sqlite")


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL; ``str()`` and ``repr()`` never show the password."""

    scheme: str
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = field(default="", repr=False)
    path: str = ""  # sqlite file, or "" for mysql

    def scrub(self, text: str) -> str:
        """``text`` with this URL's password replaced by ``***`` (an error message that quotes a connection
        string, say), so that it can go into a log line or a row."""
        return text.replace(self.password, "***") if self.password and len(self.password) >= 3 else text

    @property
    def redacted(self) -> str:
        if self.scheme == "sqlite":
            return f"sqlite:///{self.path}"
        auth = quote(self.user, safe="") + (":***" if self.password else "")
        port = f":{self.port}" if self.port else ""
        return f"mysql://{auth}@{self._netloc_host}{port}"

    @property
    def _netloc_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address needs its brackets back

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"DatabaseURL({self.redacted!r})"

    @property
    def full(self) -> str:
        """The URL with its password, for handing to a child process's environment only."""
        if self.scheme == "sqlite":
            return self.redacted
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        port = f":{self.port}" if self.port else ""
        return f"mysql://{auth}@{self._netloc_host}{port}"


def parse_url(url: str) -> DatabaseURL:
    """Parse ``mysql://user:password@host:port`` or ``sqlite:///path`` into a DatabaseURL."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            "database URL must look like mysql://user:password@host:port or sqlite:///path/to/file.db"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("mariadb", "mysql+pymysql"):
        scheme = "mysql"
    if scheme not in SCHEMES:
        raise ConfigError(
            f"unknown database URL scheme '{scheme}': use mysql://user:password@host:port "
            "or sqlite:///path/to/file.db"
        )
    if scheme == "sqlite":
        path = url.split("://", 1)[1]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        if not path:
            raise ConfigError("sqlite URL names no file: use sqlite:///path/to/file.db")
        return DatabaseURL("sqlite", path=path)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError("database URL has a port that is not a number: use mysql://user@host:3306") from exc
    if not parts.hostname:
        raise ConfigError("database URL names no host: use mysql://user:password@host:port")
    return DatabaseURL(
        "mysql",
        host=parts.hostname,
        port=port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
    )


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest ``djhpc.yaml`` in ``start`` or one of its parents."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def user_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "djhpc" / "config.yaml"


def read_yaml(path: Path) -> dict:
    """Read one YAML mapping; a broken file is a one-line ConfigError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML: fix the file or remove it") from e
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings (key: value), not a {type(data).__name__}")
    check_settings(data, path)
    if _holds_password(data):
        _warn_if_readable_by_others(path)
    return data


# What a djhpc.yaml (or ~/.config/djhpc/config.yaml) may hold, so that a misspelt key is an error, not ignored.
FILE_KEYS = ("target", "scheduler", "database", "profile", "profiles", "tables")
DATABASE_KEYS = ("url", "host", "port", "user", "password")


def check_settings(data: dict, path) -> None:
    """Refuse an unknown key or a value of the wrong type anywhere in a settings file: one line naming the file,
    the key and the nearest known one. A misspelt ``databse:`` would otherwise open a new, empty database."""
    for key, value in data.items():
        _known(key, FILE_KEYS, path)
        if key in ("target", "profile"):
            _text(key, value, path)
        elif key == "scheduler":
            _wrapped(path, check_scheduler_name, _text(key, value, path))
        elif key == "database":
            _check_database(value, path)
        elif key == "profiles":
            _check_profiles(value, path)
        elif key == "tables":
            _check_tables(value, path)


def _known(key, known: tuple[str, ...], path, section: str = "") -> None:
    if key in known:
        return
    name = f"{section}.{key}" if section else str(key)
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"did you mean '{section + '.' if section else ''}{close[0]}'?" if close else f"known: {', '.join(known)}"
    raise ConfigError(f"{path}: unknown key '{name}': {hint}")


def _text(key: str, value, path) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ConfigError(f"{path}: setting '{key}' must be text (got {type(value).__name__} {value!r})")
    return str(value)


def _check_database(value, path) -> None:
    if isinstance(value, str):
        _wrapped(path, parse_url, value)
        return
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: setting 'database' must be a URL (mysql://user@host:3306 or sqlite:///file.db) "
                          "or a mapping with url (or host, user, password, port); "
                          f"got {type(value).__name__} {value!r}")
    for key, item in value.items():
        _known(key, DATABASE_KEYS, path, "database")
        name = f"database.{key}"
        if key == "port":
            if isinstance(item, bool) or not (isinstance(item, int) or str(item).isdigit()):
                raise ConfigError(f"{path}: setting '{name}' must be a port number like 3306 (got {item!r})")
        elif not isinstance(item, str):  # a YAML number (password: 0123) would arrive changed: refuse, ask quotes
            raise ConfigError(f"{path}: setting '{name}' must be text: put it in quotes (got {type(item).__name__})")
    if "url" in value:
        _wrapped(path, parse_url, value["url"])


def _check_profiles(value, path) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: setting 'profiles' must map profile names to settings "
                          f"(got {type(value).__name__})")
    for name, section in value.items():
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"{path}: profile '{name}' must be a mapping of settings (got {type(section).__name__})")
        _wrapped(path, check_section, section or {}, where=f"profiles.{name}")


def _check_tables(value, path) -> None:
    """``tables:`` maps a pipeline's table class names to their resources (a profile's settings)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: setting 'tables' must map table class names to resources like "
                          f"{{partition: gpu, time: 4h}} (got {type(value).__name__})")
    for name, section in value.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: tables.{name} must be a mapping of resources like {{partition: gpu}} "
                              f"(got {type(section).__name__})")
        _wrapped(path, check_section, section, where=f"tables.{name}")


def _wrapped(path, check, value, *, where: str = ""):
    """``check(value)``, its error prefixed with the file (and the section) it came from."""
    try:
        return check(value)
    except (ConfigError, UsageError) as e:
        raise ConfigError(f"{path}: {where + ': ' if where else ''}{e}") from e


def _holds_password(data: dict) -> bool:
    db = data.get("database")
    url = db.get("url") if isinstance(db, dict) else db
    if isinstance(url, str) and "://" in url:
        try:
            return bool(parse_url(url).password)
        except ConfigError:
            return False
    return bool(isinstance(db, dict) and db.get("password"))


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds a database password and is readable by others: run chmod 600 %s", path, path)


@dataclass
class Settings:
    """The merged configuration of the project (file paths kept to explain where values came from)."""

    data: dict
    project_file: Path | None
    user_file: Path | None

    @property
    def project_dir(self) -> Path:
        return self.project_file.parent if self.project_file else Path.cwd()

    def get(self, key: str, default=None):
        return self.data.get(key, default)


def load_settings(start: Path | None = None) -> Settings:
    """Project file over user file; both optional."""
    user = user_config_file()
    user_data = read_yaml(user) if user.is_file() else {}
    project = find_project_file(start)
    project_data = read_yaml(project) if project else {}
    merged = {**user_data, **project_data}
    return Settings(merged, project, user if user.is_file() else None)


def _url_from_settings(data: dict, base: Path) -> str | None:
    db = data.get("database")
    if db is None:
        return None
    if isinstance(db, str):
        url = db
    elif isinstance(db, dict):
        url = db.get("url")
        if url is None and db.get("host"):
            user = quote(str(db.get("user", "root")), safe="")
            pw = db.get("password")
            auth = user + (":" + quote(str(pw), safe="") if pw else "")
            url = f"mysql://{auth}@{db['host']}:{db.get('port', 3306)}"
    else:
        raise ConfigError("setting 'database' must be a URL or a mapping with 'url' (or host/user/password)")
    if not isinstance(url, str):
        raise ConfigError("setting 'database.url' must be a string like sqlite:///pipeline.db")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # a relative SQLite path in a file means relative to that file's folder
        url = "sqlite:///" + str(base / url[len("sqlite:///"):])
    return url


def resolve_database_url(url: str | None = None, start: Path | None = None, *, datajoint=None) -> DatabaseURL:
    """Find the database URL by the precedence in this module's docstring. ``datajoint`` is the settings
    object (``dj.config``) whose ``database_url(scope)`` gives its database.* keys' server for a scope, or None."""
    if url:
        return parse_url(url)
    env = os.environ
    if env.get("DJHPC_DATABASE_URL"):
        return parse_url(env["DJHPC_DATABASE_URL"])
    if env.get("DJHPC_DATABASE_URL_FILE"):
        path = env["DJHPC_DATABASE_URL_FILE"]
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"DJHPC_DATABASE_URL_FILE={path}: cannot read it ({e.strerror})") from e
        parsed = parse_url(text)
        if parsed.password:
            _warn_if_readable_by_others(Path(path))
        return parsed
    found = datajoint.database_url("code") if datajoint is not None else None
    return found or _from_datajoint_env() or _from_files(start, datajoint)


def _from_datajoint_env() -> DatabaseURL | None:
    env = os.environ
    if env.get("DJ_HOST"):
        host = env["DJ_HOST"]
        port = env.get("DJ_PORT")
        if ":" in host and not port:
            host, port = host.rsplit(":", 1)
        try:
            port_number = int(port) if port else 3306
        except ValueError as exc:
            raise ConfigError(f"DJ_PORT must be a number (got '{port}')") from exc
        return DatabaseURL(
            "mysql",
            host=host,
            port=port_number,
            user=env.get("DJ_USER", "root"),
            password=env.get("DJ_PASS", ""),
        )
    return None


def _from_files(start: Path | None, datajoint) -> DatabaseURL:
    found = datajoint.database_url("local file") if datajoint is not None else None
    if found:
        return found
    project = find_project_file(start)
    if project:
        found = _url_from_settings(read_yaml(project), project.parent)
        if found:
            return parse_url(found)
    user = user_config_file()
    if user.is_file():
        found = _url_from_settings(read_yaml(user), user.parent)
        if found:
            return parse_url(found)
    found = datajoint.database_url("global file") if datajoint is not None else None
    return found or DatabaseURL("sqlite", path=str((start or Path.cwd()) / DEFAULT_SQLITE_FILE))
