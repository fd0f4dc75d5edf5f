"""Figures without pyplot: a Matplotlib figure on the Agg canvas and PNG writing through :mod:`storage`.

No global pyplot state (safe in Dask worker threads, no display needed), and one place that turns a figure
into PNG bytes at a local path or URL.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from seisgrid import config, storage

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(size: tuple[float, float], **kwargs) -> Figure:
    """A :class:`matplotlib.figure.Figure` of ``size`` inches (width, height) on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str, dpi: int | None = None, **savefig) -> str:
    """Write ``fig`` as PNG to ``path`` (local path or URL); ``dpi`` default ``seisgrid.maps.dpi``; returns ``path``."""
    dpi = int(config.get("maps.dpi", 150) if dpi is None else dpi)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, **{"bbox_inches": "tight", **savefig})
    storage.write_bytes(str(path), buffer.getvalue())
    return str(path)
