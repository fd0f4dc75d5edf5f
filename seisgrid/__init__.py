"""seisgrid: Dask-distributed archival geophysics (miniSEED archives → Zarr → detection; heat-flow grids)."""

from seisgrid.errors import SeisgridError

__version__ = "0.1.0"


def open_archive(url, storage_options=None):
    """Open an ingested waveform store (local path or ``s3://`` URL); see :class:`seisgrid.seismic.store.Archive`."""
    from seisgrid.seismic.store import Archive

    return Archive(url, storage_options=storage_options)


__all__ = ["SeisgridError", "open_archive", "__version__"]
