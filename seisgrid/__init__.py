"""seisgrid: Dask-distributed archival geophysics (miniSEED archives → Zarr → detection; heat-flow grids)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seisgrid.errors import SeisgridError

if TYPE_CHECKING:
    from seisgrid.seismic.store import Archive

__version__ = "0.1.0"


def open_archive(url: str, storage_options: dict | None = None) -> Archive:
    """Open an ingested waveform store (local path or ``s3://`` URL); see :class:`seisgrid.seismic.store.Archive`."""
    from seisgrid.seismic.store import Archive

    return Archive(url, storage_options=storage_options)


__all__ = ["SeisgridError", "open_archive", "__version__"]
