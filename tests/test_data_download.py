"""`data download` against a local HTTP server (127.0.0.1, no network) serving tarballs built
here from tiny synthetic data in the released archive layout (`tar czf <subset>.tar.gz -C <split> <subset>`)."""
import functools
import http.server
import io
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from matscale.cli import main as cli_main
from matscale.data.download import download, url_for
from matscale.data.reader import open_split
from matscale.errors import DataError


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www on a free port; stopped (and its thread joined) after the test."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _publish(www: Path, tiny_root: Path, split: str, subset: str, release: str) -> Path:
    target = www / release / "omat" / split / f"{subset}.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        tar.add(tiny_root / split / subset, arcname=subset)
    return target


def test_url_layout():
    assert url_for("rattled-300", "train") == \
        "https://dl.fbaipublicfiles.com/opencatalystproject/data/omat/241018/omat/train/rattled-300.tar.gz"
    assert url_for("rattled-300", "val").endswith("/241220/omat/val/rattled-300.tar.gz")


def test_download_unpacks_and_opens(server, tiny_data_root, tmp_path, capsys):
    www, base = server
    _publish(www, Path(tiny_data_root), "val", "rattled-500", "241220")
    out = tmp_path / "omat"
    rc = cli_main(["data", "download", "--subset", "rattled-500", "--split", "val", "--out", str(out),
                   "--base-url", base, "--quiet"])
    assert rc == 0 and capsys.readouterr().out.strip() == str(out / "val" / "rattled-500")
    got, ref = open_split(out, "val"), open_split(tiny_data_root, "val", subsets=["rattled-500"])
    assert len(got) == len(ref) and np.array_equal(got.natoms, ref.natoms)
    assert got[0].info["sid"] == ref[0].info["sid"]
    assert sorted(p.name for p in (out / "val").iterdir()) == ["rattled-500"]  # no temp files left
    with pytest.raises(DataError, match="already exists"):
        download("rattled-500", "val", out, base_url=base, progress=False)


def test_missing_archive_is_a_clear_error(server, tmp_path):
    _, base = server
    with pytest.raises(DataError, match=r"download of .*/241018/omat/train/rattled-300\.tar\.gz failed"):
        download("rattled-300", "train", tmp_path / "o", base_url=base, progress=False)
    assert not list((tmp_path / "o" / "train").iterdir())
    with pytest.raises(DataError, match="unknown subset"):
        download("rattled-301", "train", tmp_path / "o", base_url=base, progress=False)


def test_path_traversal_is_rejected(server, tmp_path):
    www, base = server
    target = www / "241018" / "omat" / "train" / "rattled-300.tar.gz"
    target.parent.mkdir(parents=True)
    with tarfile.open(target, "w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    out = tmp_path / "o"
    with pytest.raises(DataError, match="refusing to unpack '../../escaped.txt'"):
        download("rattled-300", "train", out, base_url=base, progress=False)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not list((out / "train").iterdir())


def test_archive_without_databases(server, tmp_path):
    www, base = server
    target = www / "241220" / "omat" / "val" / "rattled-300.tar.gz"
    target.parent.mkdir(parents=True)
    with tarfile.open(target, "w:gz") as tar:
        info = tarfile.TarInfo("rattled-300/readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DataError, match="holds no"):
        download("rattled-300", "val", tmp_path / "o", base_url=base, progress=False)
