"""Shared fixtures: a real Dask LocalCluster, an S3 API server (moto) on loopback with a fresh bucket per
test, and ObsPy's bundled miniSEED examples. Skip markers and ``raise_if_dask_computes`` live in
``helpers.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid

import dask
import pytest

_TESTS = pathlib.Path(__file__).resolve().parent
if str(_TESTS) not in sys.path:  # `from helpers import ...` works with or without tests/__init__.py
    sys.path.insert(0, str(_TESTS))

from helpers import free_port, has_boto3, has_moto, has_s3fs, write_reliability_figures  # noqa: E402 - after the sys.path line above

# Requests to the loopback servers must never go through a proxy.
for _name in ("NO_PROXY", "no_proxy"):
    _hosts = [h for h in os.environ.get(_name, "").split(",") if h]
    os.environ[_name] = ",".join(dict.fromkeys([*_hosts, "127.0.0.1", "localhost"]))

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# -------------------------------------------------------------------------------------- reliability
@pytest.fixture
def reliability_figures(request):
    """A dict a reliability test fills with its figures (kills, faults injected, cases tried, samples lost, …).

    With ``SEISGRID_RELIABILITY_REPORT=PATH`` set, each test's figures are merged into that JSON file under
    the test's id (docs/reliability.md is made from it); otherwise they are only printed with ``-s``.
    """
    figures: dict = {}
    yield figures
    if not figures:
        return
    print(f"\n{request.node.nodeid}: {figures}")
    write_reliability_figures(request.node.nodeid, figures)


# --------------------------------------------------------------------------------------------- dask


@pytest.fixture(scope="session")
def _dask_session_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        memory_limit="auto",
    )
    client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def dask_client(_dask_session_client):
    """A :class:`distributed.Client` of a real LocalCluster (2 worker processes × 1 thread).

    The cluster lives for the whole session. During a test that uses this fixture the client is the
    current one (``distributed.get_client()``) and the default Dask scheduler; other tests keep
    Dask's local scheduler.
    """
    client = _dask_session_client
    with client.as_current(), dask.config.set(scheduler=client):
        yield client


# ----------------------------------------------------------------------------------------------- s3


REPO = _TESTS.parent


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """Endpoint URL (``http://127.0.0.1:PORT``) of the S3 API server of ``cluster/s3-local.sh`` for this session.

    moto behind ``cluster/s3_server.py``'s fault injector (no faults unless a test asks: ``s3_faults``).
    """
    if not has_moto or not has_boto3:
        pytest.skip("requires moto[server] and boto3 (pip install -e '.[dev]')")
    folder = tmp_path_factory.mktemp("s3-local")
    script = REPO / "cluster" / "s3-local.sh"
    for _attempt in range(3):  # the free port can be taken between choosing it and binding it
        env = {**os.environ, "SEISGRID_S3_PORT": str(free_port()), "SEISGRID_S3_DIR": str(folder),
               "PYTHON": sys.executable}
        started = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True)
        if started.returncode == 0:
            break
    else:
        pytest.fail(f"cluster/s3-local.sh start failed: {started.stderr[-2000:]}")
    exports = dict(re.findall(r"(\w+)=(\S+)", started.stdout))
    try:
        yield exports["SEISGRID_STORAGE__S3__ENDPOINT_URL"]
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True)


class S3Faults:
    """Switch the fault injection of the session's S3 server (``cluster/s3_server.py``) and read its counts."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def set(self, rate: float | None = None, seed: int | None = None, fail_prefix: str | None = None) -> dict:
        query = {k: v for k, v in (("rate", rate), ("seed", seed), ("fail_prefix", fail_prefix)) if v is not None}
        request = urllib.request.Request(f"{self.endpoint}/_faults?{urllib.parse.urlencode(query)}", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self.endpoint}/_faults", timeout=10) as answer:
            return json.loads(answer.read())

    def off(self) -> dict:
        """Stop injecting; the counts until now."""
        state = self.state()
        self.set(rate=0.0, fail_prefix="")
        return state


@pytest.fixture
def s3_faults(s3_server):
    """:class:`S3Faults` of the session's server; faults are off again after the test."""
    faults = S3Faults(s3_server)
    faults.off()
    try:
        yield faults
    finally:
        faults.off()


def _clear_s3fs_cache():
    """Close the sessions of cached s3fs instances and forget them (no stale clients between tests)."""
    if not has_s3fs:
        return
    import fsspec.asyn
    import s3fs

    for fs in list(s3fs.S3FileSystem._cache.values()):
        creator = getattr(fs, "_s3creator", None)
        if creator is None:
            continue
        loop = None
        with contextlib.suppress(Exception):
            if fs.asynchronous:  # made by zarr's FsspecStore: lives on zarr's event loop
                from zarr.core.sync import _get_loop

                loop = _get_loop()
            else:
                loop = fs.loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                fsspec.asyn.sync(loop, creator.__aexit__, None, None, None, timeout=5)
        fs._s3 = None
        fs._s3creator = None
    s3fs.S3FileSystem.clear_instance_cache()


def _set_worker_config(client, settings: dict | None):
    """Apply (``settings``) or undo (None) dask.config settings in every worker of ``client``."""

    def apply(dask_worker, settings=settings):
        import dask.config

        import seisgrid.config  # noqa: F401  (defaults registered)

        undo = getattr(dask_worker, "_seisgrid_test_config", None)
        if undo is not None:
            undo.__exit__(None, None, None)
            dask_worker._seisgrid_test_config = None
        if settings is not None:
            dask_worker._seisgrid_test_config = dask.config.set(settings)
        try:
            import s3fs

            s3fs.S3FileSystem.clear_instance_cache()
        except ImportError:
            pass

    client.run(apply)


@pytest.fixture
def s3_bucket(request, s3_server, monkeypatch):
    """``s3://<fresh bucket>`` on the session's moto server, with seisgrid configured to use it.

    ``seisgrid.storage.s3`` points at the server (also in the workers of ``dask_client`` when the test
    uses it) and the AWS_* credential variables are set to dummy values for the test.
    """
    if not has_s3fs:
        pytest.skip("requires s3fs (pip install -e '.[cloud]')")
    import boto3

    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = f"seisgrid-test-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    settings = {
        "seisgrid.storage.s3": {
            "endpoint_url": s3_server,
            "key": "testing",
            "secret": "testing",
            "anon": False,
        }
    }
    client = request.getfixturevalue("dask_client") if "dask_client" in request.fixturenames else None
    _clear_s3fs_cache()
    with dask.config.set(settings):
        if client is not None:
            _set_worker_config(client, settings)
        try:
            yield f"s3://{bucket}"
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    _set_worker_config(client, None)
            _clear_s3fs_cache()
    with contextlib.suppress(Exception):
        objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        while objects:
            s3.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in objects]}
            )
            objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        s3.delete_bucket(Bucket=bucket)


# --------------------------------------------------------------------------------------------- data


@pytest.fixture(scope="session")
def obspy_mseed_examples() -> list[pathlib.Path]:
    """Paths of the miniSEED example files bundled with ObsPy (``obspy/io/mseed/tests/data``).

    The ``*.mseed`` / ``*.ms`` files and the files without such a suffix whose first bytes are a
    miniSEED 2 fixed header. ObsPy ships some deliberately broken or non-miniSEED files under these
    names (``not*.mseed``, ``corrupt_*``, ``brokenlastrecord.mseed``, ...): they are listed too, so
    that tests can check that bad inputs are reported, not dropped. Sorted by name; top folder only.
    """
    obspy = pytest.importorskip("obspy")
    folder = pathlib.Path(obspy.__file__).parent / "io" / "mseed" / "tests" / "data"
    if not folder.is_dir():
        pytest.skip(f"ObsPy's miniSEED examples not installed ({folder} missing)")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.suffix in (".mseed", ".ms") or _looks_like_mseed(p))
    )
    if not files:
        pytest.skip(f"no miniSEED files in {folder}")
    return files


def _looks_like_mseed(path: pathlib.Path) -> bool:
    """miniSEED 2 fixed header: 6 ASCII digits/spaces (sequence number), then D, R, Q or M."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return (
        len(head) == 8
        and all(c in b"0123456789 " for c in head[:6])
        and head[6:7] in (b"D", b"R", b"Q", b"M")
    )
