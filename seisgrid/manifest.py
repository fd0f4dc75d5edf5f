"""A store's manifest: one record per unit of work, written atomically by its task, merged per group.

Tasks write one record per unit of work (an ingest channel-day, a scanned source file, a detection
station-day) as the attributes of its own Zarr group, ``_manifest/<section>/<group>/<item>``, after the
unit's data: a run killed at any point leaves exactly the finished units recorded, and the rerun
redoes the others.

On object storage one object per unit is millions of objects for an archive of 100 TB, and listing
them costs one request per thousand. So at the end of every run the driver merges each group's
records into one object, ``_manifest/merged/<section>/<group>`` (attribute ``records``: item → record),
and then deletes the per-unit objects it merged. Reading a manifest costs one listing of the merged
objects (one per channel, station or source folder) plus the per-unit objects written since the last
merge — O(groups), not O(units). A per-unit record always takes precedence over a merged one (it is
newer), so a run killed between writing a merged object and deleting the per-unit objects leaves a
manifest that reads the same.

Everything here goes through fsspec (:func:`seisgrid.storage.filesystem`), so a local folder and
``s3://`` behave the same.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import zarr

from seisgrid import storage, versioned

if TYPE_CHECKING:
    from collections.abc import Iterable

MANIFEST = "_manifest"
MERGED = "merged"
GROUP_META = {"zarr_format": 3, "node_type": "group"}


def _path(section: str, group: str, item: str) -> str:
    return posixpath.join(MANIFEST, section, group, item) if group else posixpath.join(MANIFEST, section, item)


def write_record(store_url: str, options: dict, section: str, group: str, item: str, record: dict) -> None:
    """Write one unit's record as the attributes of the group ``_manifest/<section>/<group>/<item>``.

    One PUT on object storage (atomic), a temporary file and a rename on local disk.

    Parameters
    ----------
    store_url : str
        The store (path or URL).
    options : dict
        Its storage options.
    section, group, item : str
        Where the record goes, e.g. ``"days"``, a channel id and a date. ``group`` may be empty (the
        record then sits directly in the section and is merged under the group ``"_"``).
    record : dict
        JSON-serialisable record.
    """
    if storage.session_of(options) is not None:  # a versioned store: through its Zarr store
        zarr.create_group(storage.zarr_store(store_url, options), path=_path(section, group, item),
                          attributes=record, overwrite=True, zarr_format=3)
        return
    blob = json.dumps({**GROUP_META, "attributes": record}).encode()
    storage.write_bytes(storage.join(store_url, _path(section, group, item), "zarr.json"), blob, options)


def _attributes_under(fs: Any, base: str) -> dict[str, dict]:
    """Attributes of every group below ``base`` with attributes, by path relative to ``base``."""
    if not fs.exists(base):
        return {}
    paths = [p for p in fs.find(base) if p.endswith("/zarr.json") and posixpath.dirname(p) != base.rstrip("/")]
    out = {}
    for path, blob in (fs.cat(paths) if paths else {}).items():
        meta = json.loads(blob)
        if meta.get("node_type") == "group" and meta.get("attributes"):
            out[posixpath.dirname(path)[len(base.rstrip("/")) + 1:]] = meta["attributes"]
    return out


def _split(relative: str) -> tuple[str, str]:
    group, _, item = relative.rpartition("/")
    return group, item


def _by_group(records: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """Records by relative path ``group/item`` → ``{group: {item: record}}``."""
    by_group: defaultdict[str, dict[str, dict]] = defaultdict(dict)
    for relative, record in records.items():
        group, item = _split(relative)
        by_group[group][item] = record
    return by_group


def read_records(store_url: str, options: dict, section: str) -> dict[tuple[str, str], dict]:
    """Every record of a section: the merged ones, overridden by per-unit records written since.

    Returns
    -------
    dict
        ``(group, item) → record``.
    """
    if storage.session_of(options) is not None:  # a versioned store: through its Zarr store
        return read_store_records(storage.zarr_store(store_url, options), section)
    fs, root = storage.filesystem(store_url, options)
    root = root.rstrip("/")
    return _combine(_attributes_under(fs, posixpath.join(root, MANIFEST, MERGED, section)),
                    _attributes_under(fs, posixpath.join(root, MANIFEST, section)))


def read_store_records(store: Any, section: str) -> dict[tuple[str, str], dict]:
    """:func:`read_records` through an open Zarr store (plain, or an Icechunk snapshot's, read-only).

    Parameters
    ----------
    store : zarr.abc.store.Store
        The store, e.g. the ``.store`` of a group opened with :func:`seisgrid.storage.open_group`.
    section : str
        ``"days"``, ``"files"``, ...

    Returns
    -------
    dict
        ``(group, item) → record``.
    """
    return _combine(versioned.attributes_under(store, posixpath.join(MANIFEST, MERGED, section)),
                    versioned.attributes_under(store, posixpath.join(MANIFEST, section)))


def _combine(merged: dict[str, dict], fresh: dict[str, dict]) -> dict[tuple[str, str], dict]:
    """Records of the merged objects, overridden by the per-unit ones (newer)."""
    records: dict[tuple[str, str], dict] = {}
    for group, attrs in merged.items():
        for item, record in attrs.get("records", {}).items():
            records[("" if group == "_" else group, item)] = record
    for relative, record in fresh.items():
        records[_split(relative)] = record
    return records


def _write_merged(store_url: str, options: dict, section: str, group: str, records: dict) -> None:
    blob = json.dumps({**GROUP_META, "attributes": {"records": dict(sorted(records.items()))}}).encode()
    storage.write_bytes(storage.join(store_url, MANIFEST, MERGED, section, group or "_", "zarr.json"), blob, options)


def _ensure_groups(store_url: str, options: dict, section: str) -> None:
    """The group nodes above the merged records, so that the manifest stays a valid Zarr hierarchy."""
    fs, root = storage.filesystem(store_url, options)
    for parts in ((MANIFEST,), (MANIFEST, MERGED), (MANIFEST, MERGED, section)):
        key = posixpath.join(root.rstrip("/"), *parts, "zarr.json")
        if not fs.exists(key):
            storage.write_bytes(storage.join(store_url, *parts, "zarr.json"), json.dumps(GROUP_META).encode(), options)


def merge_records(store_url: str, options: dict, section: str) -> int:
    """Merge the per-unit records of a section into one object per group, then delete them.

    Call it from the driver after a run's tasks are done (never while tasks of the same store run).

    Returns
    -------
    int
        The number of per-unit records merged.
    """
    if storage.session_of(options) is not None:
        return _merge_versioned(store_url, options, section)
    fs, root = storage.filesystem(store_url, options)
    base = posixpath.join(root.rstrip("/"), MANIFEST, section)
    fresh = _attributes_under(fs, base)
    if not fresh:
        return 0
    by_group = _by_group(fresh)
    _ensure_groups(store_url, options, section)
    merged_base = posixpath.join(root.rstrip("/"), MANIFEST, MERGED, section)
    keys = [posixpath.join(merged_base, group or "_", "zarr.json") for group in by_group]
    current = fs.cat(keys, on_error="omit")
    for group, items in sorted(by_group.items()):
        blob = current.get(posixpath.join(merged_base, group or "_", "zarr.json"))
        records = json.loads(blob).get("attributes", {}).get("records", {}) if blob else {}
        records.update(items)
        _write_merged(store_url, options, section, group, records)
    # Only now delete what was merged: a run killed before this line leaves records that read the same.
    # No task writes while the driver merges, so a group's whole folder goes (no empty folders left).
    merged_paths = {posixpath.join(base, group) for group in by_group if group}
    merged_paths |= {posixpath.join(base, item) for item in by_group.get("", {})}
    fs.rm(sorted(merged_paths), recursive=True)
    return len(fresh)


def _merge_versioned(store_url: str, options: dict, section: str) -> int:
    """:func:`merge_records` through the Zarr store of a versioned session (all of it published at once)."""
    store = storage.zarr_store(store_url, options)
    fresh = versioned.attributes_under(store, posixpath.join(MANIFEST, section))
    if not fresh:
        return 0
    by_group = _by_group(fresh)
    merged = versioned.attributes_under(store, posixpath.join(MANIFEST, MERGED, section))
    for group, items in sorted(by_group.items()):
        records = {**merged.get(group or "_", {}).get("records", {}), **items}
        zarr.create_group(store, path=posixpath.join(MANIFEST, MERGED, section, group or "_"),
                          attributes={"records": dict(sorted(records.items()))}, overwrite=True, zarr_format=3)
    sections = zarr.open_group(store, path=posixpath.join(MANIFEST, section), mode="r+", zarr_format=3)
    for name in {relative.split("/", 1)[0] for relative in fresh}:
        del sections[name]
    return len(fresh)


def drop_records(store_url: str, options: dict, section: str, keys: Iterable[tuple[str, str]]) -> int:
    """Delete the records ``(group, item)`` (merged and per-unit), so that the next run redoes those units.

    Returns
    -------
    int
        The number of keys that had a record.
    """
    fs, root = storage.filesystem(store_url, options)
    root = root.rstrip("/")
    wanted: defaultdict[str, set[str]] = defaultdict(set)
    for group, item in keys:
        wanted[group].add(item)
    dropped = set()
    for group, items in wanted.items():
        key = posixpath.join(root, MANIFEST, MERGED, section, group or "_", "zarr.json")
        if fs.exists(key):
            records = json.loads(fs.cat_file(key)).get("attributes", {}).get("records", {})
            hit = items & set(records)
            if hit:
                dropped |= {(group, item) for item in hit}
                _write_merged(store_url, options, section, group, {k: v for k, v in records.items() if k not in hit})
        for item in items:
            path = posixpath.join(root, _path(section, group, item))
            if fs.exists(path):
                fs.rm(path, recursive=True)
                dropped.add((group, item))
    return len(dropped)
