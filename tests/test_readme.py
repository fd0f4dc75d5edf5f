"""The README's copy-paste examples for HPC and cloud storage, run as written (bash, in a fresh folder).

A block is a fenced ``bash`` block right after a ``<!-- tested: tests/test_readme.py (KIND) -->`` line; KIND
is the marker it needs (``slurm``: the one-node SLURM of ``cluster/slurm-local.sh``; ``s3``: the S3 API server
of ``cluster/s3-local.sh``, started by the block itself on a free port).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from helpers import free_port, has_moto, requires_jobqueue

REPO = pathlib.Path(__file__).resolve().parents[1]


def readme_blocks() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    found = re.findall(r"<!-- tested: tests/test_readme.py \((\w+)\) -->\n```bash\n(.*?)```", text, flags=re.S)
    return dict(found)


def run_block(kind: str, folder: pathlib.Path, env: dict) -> subprocess.CompletedProcess:
    for name in ("cluster", "pipelines"):  # the block runs as from a checkout
        (folder / name).symlink_to(REPO / name)
    script = "set -euo pipefail\n" + readme_blocks()[kind]
    path = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["bash", "-c", script], cwd=folder, env={**env, "PATH": path}, capture_output=True,
                          text=True, timeout=900)


def test_the_readme_has_both_blocks():
    assert set(readme_blocks()) == {"slurm", "s3"}


@pytest.mark.slurm
@requires_jobqueue
def test_readme_hpc_block_runs(tmp_path):
    if shutil.which("sinfo") is None or subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        pytest.skip("SLURM is not running: bash cluster/slurm-local.sh start")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEISGRID_STORAGE")}
    done = run_block("slurm", tmp_path, env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "#SBATCH" in done.stdout and "ingested hpc-demo/archive" in done.stdout
    assert "SLURM cluster from" in done.stderr
    assert done.stdout.rstrip().splitlines()[-1].split()[0] == "JOBID"  # squeue: the header, no job
    assert (tmp_path / "hpc-demo" / "catalog.xml").exists()


@pytest.mark.s3
def test_readme_cloud_block_runs(tmp_path):
    if not has_moto:
        pytest.skip("requires moto[server] (pip install -e '.[dev]')")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEISGRID_STORAGE", "AWS_"))}
    env.update(SEISGRID_S3_PORT=str(port), SEISGRID_S3_DIR=str(tmp_path / "s3"), PYTHON=sys.executable)
    done = run_block("s3", tmp_path, env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "ingested s3://seisgrid/archive → s3://seisgrid/waveforms.zarr" in done.stdout
    assert "s3://seisgrid/waveforms.zarr: 9 channels" in done.stdout
    assert "testing" not in done.stdout + done.stderr.replace("AWS_ACCESS_KEY_ID=testing", "")
