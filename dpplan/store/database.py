"""The store's SQLite file: where it lives, how it is opened, migrated and written.

Failures of the database file itself (damaged, a folder in its place, read-only for a
command that writes) raise :class:`~dpplan.errors.StoreError` with the path and what to do.
A store whose folder or file is read-only is opened read-only, so listing still works (an
older store opened read-only is read without migrating it).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dpplan.errors import StoreError
from dpplan.store import schema
from dpplan.store.liveness import Liveness

__all__ = ["StoreDatabase", "default_home", "stored_id", "writable"]


def default_home() -> Path:
    """Return the dpplan home folder (``$DPPLAN_HOME``, else a per-user data folder)."""
    if os.environ.get("DPPLAN_HOME"):
        return Path(os.environ["DPPLAN_HOME"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "dpplan"


def writable(path: Path) -> bool:
    """Return whether this process may write ``path``."""
    return os.access(path, os.W_OK)


def stored_id(value: object, *, field: str = "run_id") -> int:
    """Return a run or sweep id as an int; ``1.7``, ``"1"``, ``True`` and ids beyond SQLite's
    range are refused (``int(1.7)`` once made ``runs delete 1.7`` delete run 1).

    Raises:
        PlanError: field ``field``.
    """
    from dpplan import _validate

    return _validate.integer(
        minimum=1,
        maximum=2**63 - 1,
        hint="Run ids are whole numbers; list them with 'dpplan runs'.",
        **{field: value},
    )


class StoreDatabase:
    """The SQLite file of a run store; the repositories (runs, sweeps) build on it.

    Args:
        home: folder holding ``runs.sqlite3`` and ``checkpoints/``; default
            :func:`default_home`.
        liveness: process and time queries and heartbeat threads; default :class:`Liveness`.

    Attributes:
        read_only: True when the folder or database file is not writable; the store is then
            opened read-only (listing and showing work, writing raises :class:`StoreError`).

    A store that does not exist is created by its first write (folder and file); reading it
    (listing, showing, a failed lookup) finds it empty and creates nothing. A writable store
    of an older schema version is migrated when it is opened (:mod:`dpplan.store.schema`).

    Raises:
        StoreError: if ``home`` is a file, ``runs.sqlite3`` is a folder or is damaged or not
            a database, was written by a newer dpplan, or the store does not exist in a
            read-only folder (a write to a store that does not exist and cannot be created
            raises it too).
    """

    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, liveness: Liveness | None = None
    ) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.path = self.home / "runs.sqlite3"
        self.liveness = Liveness() if liveness is None else liveness
        if self.home.exists() and not self.home.is_dir():
            raise StoreError(
                f"the dpplan home {self.home} is a file, not a folder. Set DPPLAN_HOME to a "
                "folder (it is created if missing), or move the file away."
            )
        if self.path.exists() and not self.path.is_file():
            raise StoreError(
                f"the run store {self.path} is not a file (a folder is in its place). Move "
                "it away, or set DPPLAN_HOME to another folder."
            )
        # A store that does not exist yet is created by the first write, never by a read:
        # listing, showing and failed lookups leave no folder or file behind.
        self.read_only = self.home.exists() and (
            not writable(self.home) or (self.path.exists() and not writable(self.path))
        )
        if self.read_only and not self.path.exists():
            raise StoreError(
                f"there is no run store at {self.path}, and {self.home} is read-only so "
                "none can be created. Set DPPLAN_HOME to a folder you can write to."
            )
        if self.path.exists():
            with self._connect() as connection:
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
                if not self.read_only:
                    schema.migrate(connection, where=str(self.path))

    def _create(self) -> None:
        """Create the home folder and the database (the first write of a new store)."""
        if self.path.exists():
            return
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the dpplan home {self.home}: {exc}. Set DPPLAN_HOME to "
                "a folder you can write to."
            ) from exc
        if not writable(self.home):
            self.read_only = True
            raise StoreError(
                f"there is no run store at {self.path}, and {self.home} is read-only so "
                "none can be created. Set DPPLAN_HOME to a folder you can write to."
            )
        with self._connect(create=True) as connection:
            schema.migrate(connection, where=str(self.path))

    def _error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "readonly" in text or "read-only" in text:
            return StoreError(
                f"the run store {self.path} is read-only ({text}); this command writes to "
                f"it. Make {self.home} and the file writable, or set DPPLAN_HOME to a "
                "folder you can write to."
            )
        if "locked" in text or "busy" in text:
            return StoreError(
                f"the run store {self.path} is busy ({text}): another dpplan process holds "
                "it. Try again in a moment."
            )
        return StoreError(
            f"the run store {self.path} cannot be used: {type(exc).__name__}: {text}. It is "
            f"damaged or is not a dpplan run store. Move it aside (e.g. 'mv {self.path} "
            f"{self.path}.damaged') and dpplan starts a new, empty store; nothing else is "
            "changed."
        )

    @contextmanager
    def _connect(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        if not create and not self.path.exists():
            # Reading a store that does not exist: an empty one, in memory (nothing created).
            connection = sqlite3.connect(":memory:", isolation_level=None)
            try:
                connection.row_factory = sqlite3.Row
                schema.create_all(connection)
                yield connection
            finally:
                connection.close()
            return
        uri = f"{self.path.resolve().as_uri()}?mode={'ro' if self.read_only else 'rwc'}"
        if self.read_only and not writable(self.home) and not Path(f"{self.path}-wal").exists():
            # SQLite cannot create the WAL index in a read-only folder; with no WAL file
            # nobody can change the database there, so it is read as immutable.
            uri += "&immutable=1"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            connection.row_factory = sqlite3.Row
            if not self.read_only:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            yield connection
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        finally:
            connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise StoreError(
                f"the run store {self.path} is read-only; this command writes to it. Make "
                f"{self.home} and the file writable, or set DPPLAN_HOME to a folder you can "
                "write to."
            )
        self._create()
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _has_table(self, connection: sqlite3.Connection, name: str) -> bool:
        query = "SELECT name FROM sqlite_master WHERE type='table' AND name=?"
        return connection.execute(query, (name,)).fetchone() is not None
