"""Fetch one real OMat24 subset archive and unpack it into the matscale layout.

URL: `<base>/<release>/omat/<split>/<subset>.tar.gz` (train: release 241018, val: 241220,
the corrected one without duplicates). The archive is streamed to a temporary file next to
the destination (tqdm progress), unpacked into a temporary directory with path-traversal,
link and device members rejected, checked to open as a dataset, and only then moved to
`<out>/<split>/<subset>/`. An interrupted download leaves no partial subset behind.
"""
from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from matscale.data.subsets import BASE_URL, RELEASES, check_split, check_subsets
from matscale.errors import DataError

CHUNK = 1 << 20


def url_for(subset: str, split: str, base_url: str = BASE_URL, release: str | None = None) -> str:
    return f"{base_url.rstrip('/')}/{release or RELEASES[split]}/omat/{split}/{subset}.tar.gz"


def _fetch(url: str, dest: Path, progress: bool, timeout: float) -> None:
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, disable=not progress,
                      file=sys.stderr) as bar:
                while chunk := resp.read(CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataError(f"download of {url} failed: {exc}; check the URL/--base-url and your network") from None


def _safe_members(tar: tarfile.TarFile, archive: str):
    for m in tar.getmembers():
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts:
            raise DataError(f"{archive}: refusing to unpack {m.name!r} (path outside the destination)")
        if not (m.isfile() or m.isdir()):
            raise DataError(f"{archive}: refusing to unpack {m.name!r} (links and special files are not allowed)")
        yield m


def unpack(archive: Path, subset: str, split: str, out: Path) -> Path:
    """Unpack `archive` (a tarball of `<subset>/` or of bare files) into `out/<split>/<subset>/`."""
    dest = out / split / subset
    if dest.exists() and any(dest.iterdir()):
        raise DataError(f"{dest} already exists and is not empty; delete it to download again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{subset}.unpack-", dir=dest.parent))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = list(_safe_members(tar, str(archive)))
                tar.extractall(work, members=members, filter="data")
        except tarfile.TarError as exc:
            raise DataError(f"{archive} is not a valid tar archive ({exc}); download it again") from None
        dbs = sorted(work.rglob("*.aselmdb"))
        if not dbs:
            raise DataError(f"{archive} holds no *.aselmdb files; is it an OMat24 subset archive?")
        dirs = {p.parent for p in dbs}
        if len(dirs) != 1:
            raise DataError(f"{archive} holds .aselmdb files in several folders: {sorted(map(str, dirs))}")
        src = dirs.pop()
        for lock in src.glob("*.aselmdb-lock"):
            lock.unlink()
        if dest.exists():
            dest.rmdir()
        os.replace(src, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def download(subset: str, split: str, out: str | os.PathLike, base_url: str = BASE_URL, release: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download and unpack one subset; returns `<out>/<split>/<subset>` after checking it opens."""
    from matscale.data.reader import open_split

    split = check_split(split)
    (subset,) = check_subsets([subset])
    out = Path(out).expanduser()
    url = url_for(subset, split, base_url, release)
    (out / split).mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{subset}.", suffix=".tar.gz.part", dir=out / split)
    os.close(fd)
    try:
        _fetch(url, Path(tmp), progress, timeout)
        dest = unpack(Path(tmp), subset, split, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    try:
        ds = open_split(out, split, subsets=[subset])
        if len(ds):
            ds.record(0)
    except DataError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise DataError(f"the downloaded {subset} does not open as a dataset: {exc}") from None
    return dest
