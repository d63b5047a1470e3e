"""Where things are: paths are relative to the repository, never to a notebook's cwd."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "resolve"]


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
    """Resolve ``path``: absolute as given; relative against the repository root, then the cwd.

    Examples
    --------
    >>> resolve("/tmp").as_posix()
    '/tmp'
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    in_repo = repo_root() / p
    if in_repo.exists() or not (Path.cwd() / p).exists():
        return in_repo
    return (Path.cwd() / p).resolve()
