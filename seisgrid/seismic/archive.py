"""Find waveform files under a source (SDS tree, any folder tree, a glob, one file; local or URL).

An **SDS tree** is recognised by its paths: ``YEAR/NET/STA/CHA.TYPE/NET.STA.LOC.CHA.TYPE.YEAR.DOY``
(:func:`is_sds_path`); its waveform files are the SDS-named files. Files beside the waveforms that
are clearly something else — a known *sidecar* type by extension (:data:`SIDECAR_SUFFIXES`: tables,
JSON/YAML/XML metadata such as StationXML or QuakeML, notes, logs, figures; also gzipped) — are told
apart by :func:`sidecar_suffix`; the ingest decides from their first bytes whether they are skipped
(see :mod:`seisgrid.seismic.ingest`).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from seisgrid import storage
from seisgrid.errors import StorageError

SDS_NAME = re.compile(
    r"^(?P<net>[^.]*)\.(?P<sta>[^.]*)\.(?P<loc>[^.]*)\.(?P<cha>[^.]*)\.(?P<type>[A-Z])\.(?P<year>\d{4})\.(?P<doy>\d{3})$"
)
GLOB_CHARS = set("*?[")
# Files of these types are metadata or documents that live beside waveform archives (synth writes
# catalog.csv, stations.csv, transients.csv and archive.json next to its SDS tree).
SIDECAR_SUFFIXES = (".csv", ".json", ".txt", ".md", ".yaml", ".yml", ".xml", ".log", ".png")
COMPRESSED_SUFFIXES = (".gz",)  # the ingest reads gzip; "catalog.csv.gz" is a .csv sidecar


@dataclass(frozen=True)
class SourceFile:
    """One file to ingest: its URL (or local path), size in bytes and a version tag (mtime or ETag)."""

    url: str
    size: int
    version: str


@dataclass(frozen=True)
class SDSName:
    """Channel id and day that an SDS file name promises (``NET.STA.LOC.CHA.TYPE.YEAR.DOY``)."""

    id: str
    year: int
    doy: int


def parse_sds_name(url: str) -> SDSName | None:
    """The SDS id and day of ``url``'s file name, or None when the name is not SDS-shaped."""
    match = SDS_NAME.match(posixpath.basename(str(url)))
    if not match:
        return None
    g = match.groupdict()
    return SDSName(f"{g['net']}.{g['sta']}.{g['loc']}.{g['cha']}", int(g["year"]), int(g["doy"]))


def is_sds_path(url: str) -> bool:
    """Whether ``url`` sits where an SDS archive keeps it: ``.../YEAR/NET/STA/CHA.TYPE/NET.STA.LOC.CHA.TYPE.YEAR.DOY``.

    The name must be SDS-shaped and the four folders above it must repeat its year, network,
    station, and channel with its data type.
    """
    parts = str(url).replace("\\", "/").rstrip("/").split("/")
    match = SDS_NAME.match(parts[-1])
    if not match or len(parts) < 5:
        return False
    g = match.groupdict()
    return parts[-5:-1] == [g["year"], g["net"], g["sta"], f"{g['cha']}.{g['type']}"]


def sidecar_suffix(url: str) -> str | None:
    """The sidecar type of ``url`` by its extension (``".csv"``, ...; ``".gz"`` looked through), or None."""
    name = posixpath.basename(str(url).replace("\\", "/")).lower()
    for compressed in COMPRESSED_SUFFIXES:
        if name.endswith(compressed):
            name = name[: -len(compressed)]
    for suffix in SIDECAR_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def source_layout(source: str, files: list[SourceFile]) -> str:
    """The layout of ``source``: ``"sds"``, ``"folder"``, ``"glob"`` or ``"file"``.

    ``"sds"`` when ``source`` holds an SDS tree (any file at an SDS position), else a glob pattern, a
    single file or a folder.
    """
    if any(is_sds_path(f.url) for f in files):
        return "sds"
    fs, path = storage.filesystem(source)
    if GLOB_CHARS & set(path):
        return "glob"
    return "file" if len(files) == 1 and fs.isfile(path) else "folder"


def _version(info: dict) -> str:
    for key in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created"):
        if info.get(key) is not None:
            return str(info[key])
    return ""


def find_files(source: str, pattern: str | None = None) -> list[SourceFile]:
    """List the files under ``source``, sorted by URL.

    Parameters
    ----------
    source : str
        A folder (searched recursively; an SDS tree is one), a glob such as ``data/*/*.mseed``, or a
        single file; local path or URL (``s3://bucket/prefix``).
    pattern : str, optional
        Keep only files whose name matches this glob (``fnmatch`` on the base name).

    Raises
    ------
    StorageError
        When ``source`` does not exist or matches nothing.
    """
    import fnmatch

    fs, path = storage.filesystem(source)
    if GLOB_CHARS & set(path):
        infos = fs.glob(path, detail=True)
    elif fs.isfile(path):
        infos = {path: fs.info(path)}
    elif fs.isdir(path):
        infos = fs.find(path, detail=True)
    else:
        raise StorageError(f"{source}: no such file or folder")
    files = []
    for name, info in infos.items():
        if info.get("type") == "directory" or posixpath.basename(name).startswith("."):
            continue
        if pattern and not fnmatch.fnmatch(posixpath.basename(name), pattern):
            continue
        url = name if storage.is_local(source) else fs.unstrip_protocol(name)
        files.append(SourceFile(url, int(info.get("size") or 0), _version(info)))
    if not files:
        raise StorageError(f"{source}: no files found" + (f" matching {pattern!r}" if pattern else ""))
    return sorted(files, key=lambda f: f.url)
