"""One way to write a local file or folder so that readers see the old one or the whole new one.

The content is built under a temporary name beside the target (same filesystem, so the final
rename is atomic) and renamed over it only when the block succeeds; on failure the temporary
is removed and the target is untouched.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline_core.config import S3Settings
from pipeline_core.errors import StorageError, first_line
from pipeline_io.s3 import is_s3, s3_filesystem


def temporary_sibling(target: Path) -> Path:
    """A fresh hidden name beside ``target``."""
    return target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}")


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``target`` when the block ends without error."""
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir():
            # a folder cannot be renamed over a non-empty one: move the old aside first
            old = temporary_sibling(final)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(target: str | os.PathLike[str], payload: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(payload)


# Several files published together (predictions, quarantine, reports): each is built under a
# staged name first and published once all of them are complete.
def staged_path(uri: str, staging: Path) -> Path:
    """Where to build a file bound for ``uri``: beside it when local (so a rename publishes it), else in staging."""
    if is_s3(uri):
        return staging / f"{uuid.uuid4().hex}-{Path(uri).name}"
    target = Path(uri).expanduser().resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{target.parent}: cannot create the output folder ({exc.strerror})") from None
    staged = temporary_sibling(target)
    try:  # find out now, not after the work, that nothing can be written there (read-only, /proc, full)
        staged.touch()
        staged.unlink()
    except OSError as exc:
        raise StorageError(f"{target}: cannot write in {target.parent} ({exc.strerror}); choose another output location") from None
    return staged


def publish_staged(local: Path, uri: str, s3: S3Settings) -> str:
    """Move a file built by `staged_path` to ``uri``: a rename beside it, or one upload."""
    if is_s3(uri):
        try:
            s3_filesystem(s3).put_file(str(local), uri)
        except Exception as exc:  # botocore raises many types for one cause
            raise StorageError(f"{uri}: cannot write ({first_line(exc)})") from None
        return uri
    target = Path(uri).expanduser().resolve()
    try:
        os.replace(local, target)
    except OSError as exc:
        raise StorageError(f"{target}: cannot write ({exc.strerror})") from None
    return str(target)


class Publication:
    """Files published as one unit: every one of them, or none, with the files they replaced restored.

    Each `publish` first sets aside the file it replaces (renamed beside it, or copied to a backup key
    on S3); `rollback` removes what this unit published and puts those back, `commit` drops them.
    Used as a context manager it commits when the block succeeds and rolls back on any error,
    an interrupt included.
    """

    def __init__(self, s3: S3Settings) -> None:
        self.s3 = s3
        self.published: list[tuple[str, str | None]] = []  # (target, where the replaced file waits)

    def publish(self, local: Path, uri: str) -> str:
        backup = None
        if is_s3(uri):
            fs = s3_filesystem(self.s3)
            if fs.exists(uri):
                backup = f"{uri.rsplit('/', 1)[0]}/.bak-{uuid.uuid4().hex}-{uri.rsplit('/', 1)[1]}"
                fs.copy(uri, backup)
        else:
            target = Path(uri).expanduser().resolve()
            if target.exists():
                backup = str(target.with_name(f".bak-{uuid.uuid4().hex}-{target.name}"))
                os.replace(target, backup)
        self.published.append((uri, backup))  # before the move: a failed move is undone like a finished one
        return publish_staged(local, uri, self.s3)

    def rollback(self) -> None:
        fs = s3_filesystem(self.s3) if any(is_s3(uri) for uri, _ in self.published) else None
        for uri, backup in reversed(self.published):
            if is_s3(uri):
                if fs.exists(uri):
                    fs.rm(uri)
                if backup:
                    fs.mv(backup, uri)
            else:
                Path(uri).expanduser().resolve().unlink(missing_ok=True)
                if backup:
                    os.replace(backup, Path(uri).expanduser().resolve())
        self.published.clear()

    def commit(self) -> None:
        fs = s3_filesystem(self.s3) if any(is_s3(uri) and backup for uri, backup in self.published) else None
        for uri, backup in self.published:
            if backup and is_s3(uri):
                fs.rm(backup)
            elif backup:
                Path(backup).unlink(missing_ok=True)
        self.published.clear()

    def __enter__(self) -> "Publication":
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.rollback()
