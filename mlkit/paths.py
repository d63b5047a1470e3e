"""Where things are: paths are relative to the repository, never to a notebook's cwd."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

__all__ = ["repo_root", "resolve", "find_input", "file_lock"]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (``flock``) for the duration of a ``with`` block.

    Parallel runs that open a new SQLite file at once (the MLflow store, the prediction log)
    take it so that one of them creates the tables. On Windows, which has no ``flock``, it
    does nothing.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def repo_root() -> Path:
    """Return the repository root (the folder holding ``notebooks/`` and ``mlkit/``).

    ``MLKIT_ROOT`` overrides it; otherwise it is the parent of the installed package when that
    parent holds ``notebooks/`` (an editable install, as ``make`` makes), else the working directory.

    Examples
    --------
    >>> (repo_root() / "mlkit").is_dir() or True
    True
    """
    env = os.environ.get("MLKIT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "notebooks").is_dir():
        return here
    return Path.cwd().resolve()


def resolve(path: str | os.PathLike[str]) -> Path:
    """Resolve ``path``: absolute as given, relative against the repository root.

    Examples
    --------
    >>> resolve("/tmp").as_posix()
    '/tmp'
    >>> resolve("build/x") == repo_root() / "build" / "x"
    True
    """
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def find_input(path: str | os.PathLike[str]) -> Path:
    """Find an input file: absolute as given; relative against the repository, else the cwd.

    Examples
    --------
    >>> find_input("pyproject.toml").name
    'pyproject.toml'
    """
    in_repo = resolve(path)
    if in_repo.exists():
        return in_repo
    in_cwd = Path.cwd() / Path(path).expanduser()
    return in_cwd.resolve() if in_cwd.exists() else in_repo
