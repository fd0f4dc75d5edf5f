"""The model's tables: training cells (features + gridded heat flow) and prediction cells (features only).

Both come from the Zarr grids of ``seisgrid ghf features`` and ``seisgrid ghf heatflow``. The features
default to the VIF selection (:func:`seisgrid.ghf.collinearity.select_features` over the training cells),
so the model sees what the study's model saw: the candidates that survive VIF ≤ 8. Optionally regional
means of the selected features are appended (:mod:`seisgrid.ghf.regional`, ``seisgrid.ghf.regional_km``).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from seisgrid import config
from seisgrid.errors import SeisgridError
from seisgrid.ghf.collinearity import (
    HEATFLOW_VARIABLE,
    candidate_features,
    select_features,
    training_table,
)
from seisgrid.ghf.grid import open_grid
from seisgrid.ghf.regional import add_regional_means, parse_regional_name, radii, regional_name

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

logger = logging.getLogger("seisgrid")


@dataclasses.dataclass
class TrainingSet:
    """Training cells: one row per 0.5° cell with a heat-flow value and every feature.

    Attributes
    ----------
    features : pandas.DataFrame
        (n, p) feature values (units as in the feature grid), columns = ``names``.
    target : numpy.ndarray
        (n,) quality-weighted cell mean heat flow, mW m⁻².
    weight : numpy.ndarray
        (n,) sum of the quality weights of the cell's measurements (``heatflow_weight``; 1 when absent).
    lat, lon : numpy.ndarray
        (n,) cell-centre coordinates, degrees.
    names : list of str
        Feature names, in column order.
    categorical : list of str
        Label-encoded categorical features among ``names`` (they enter the network as numbers, as in the
        study).
    """

    features: pd.DataFrame
    target: np.ndarray
    weight: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    names: list
    categorical: list

    def __len__(self) -> int:
        return len(self.target)

    def subset(self, index: ArrayLike) -> TrainingSet:
        """The rows ``index`` (integer positions or a boolean mask) as a new TrainingSet."""
        index = np.asarray(index)
        return dataclasses.replace(self, features=self.features.iloc[index], target=self.target[index],
                                   weight=self.weight[index], lat=self.lat[index], lon=self.lon[index])


def _categorical(ds, names) -> list:
    return [n for n in names if "flag_values" in ds[n].attrs]


def select_variables(features: xr.Dataset, heatflow: xr.Dataset, variables: Sequence[str] | None = None) -> list:
    """Feature names for the model: ``variables`` as given, or the VIF selection over the training cells."""
    if variables:
        return [str(v) for v in variables]
    table = training_table(features, heatflow, candidate_features(features))
    return list(select_features(table)["final"])


def load_training_set(features_store: str | xr.Dataset, heatflow_store: str | xr.Dataset,
                      variables: Sequence[str] | None = None,
                      regional_km: Sequence[float] | str | None = None) -> TrainingSet:
    """Training cells of a feature grid and a heat-flow grid (stores or open Datasets on one grid).

    Parameters
    ----------
    features_store, heatflow_store : str or xarray.Dataset
        ``seisgrid ghf features`` / ``heatflow`` outputs (local paths or URLs), or the Datasets.
    variables : list of str, optional
        Features to use; default: the VIF selection (``seisgrid.vif.threshold``). Regional-mean names
        (``{feature}_regional{R}km``) are computed from their base feature.
    regional_km : list of float or str, optional
        Radii (km) of regional means appended for every numeric feature (:mod:`seisgrid.ghf.regional`);
        default ``seisgrid.ghf.regional_km`` (none).

    Returns
    -------
    TrainingSet
    """
    features = open_grid(features_store, "feature grid") if isinstance(features_store, str) else features_store
    heatflow = open_grid(heatflow_store, "heat-flow grid") if isinstance(heatflow_store, str) else heatflow_store
    names = select_variables(features, heatflow, variables)
    scales = radii(config.get("ghf.regional_km", [], override=regional_km))
    numeric = [n for n in names if n in features and parse_regional_name(n) is None]
    numeric = [n for n in numeric if n not in _categorical(features, numeric)]
    wanted = [regional_name(n, km) for km in scales for n in numeric]
    names += [n for n in wanted if n not in names]
    features = add_regional_means(features, names)
    # The VIF selection (no ``variables``) has already warned about cells lacking a candidate feature.
    table = training_table(features, heatflow, names, quiet=not variables)
    if len(table) < 10:
        raise SeisgridError(f"only {len(table)} training cells (heat flow and every feature of {names}); "
                            "check that both grids cover the same region")
    lat = table.index.get_level_values("lat").to_numpy()
    lon = table.index.get_level_values("lon").to_numpy()
    points = {"lat": xr.DataArray(lat, dims="cell"), "lon": xr.DataArray(lon, dims="cell")}
    target = heatflow[HEATFLOW_VARIABLE].sel(points, method="nearest").values.astype(float)
    if "heatflow_weight" in heatflow:
        weight = heatflow["heatflow_weight"].sel(points, method="nearest").values.astype(float)
    else:
        weight = np.ones_like(target)
    return TrainingSet(features=table.reset_index(drop=True), target=target, weight=weight, lat=lat, lon=lon,
                       names=names, categorical=_categorical(features, names))


def prediction_table(features_store: str | xr.Dataset, variables: Sequence[str], lat_max: float = -60.0,
                     min_land_fraction: float = 0.5) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Feature values of the cells to predict: land (and grounded ice) south of ``lat_max``.

    Parameters
    ----------
    features_store : str or xarray.Dataset
        The feature grid.
    variables : list of str
        Features, in the model's order (regional means, ``{feature}_regional{R}km``, are computed from
        their base feature over the whole grid).
    lat_max : float
        Northern limit, degrees (−60: the study's Antarctic domain).
    min_land_fraction : float
        Cells with at least this share of land in the GLOBE mask (ice shelves count as ocean there).

    Returns
    -------
    table : pandas.DataFrame
        One row per cell with every feature finite; columns ``variables``.
    lat, lon : numpy.ndarray
        Cell centres, degrees.
    """
    features = open_grid(features_store, "feature grid") if isinstance(features_store, str) else features_store
    features = add_regional_means(features, variables)  # on the whole grid: discs reach across lat_max
    region = features.sel(lat=slice(None, lat_max))
    keep = np.ones((region.sizes["lat"], region.sizes["lon"]), bool)
    if "land_fraction" in region:
        keep &= region["land_fraction"].transpose("lat", "lon").values >= min_land_fraction
    columns = {}
    for name in variables:
        if name not in region:
            raise SeisgridError(f"feature {name} is not in the feature grid "
                                f"(it has {', '.join(map(str, region.data_vars))})")
        values = region[name].transpose("lat", "lon").values.astype(float)
        keep &= np.isfinite(values)
        columns[name] = values
    rows, cols = np.nonzero(keep)
    table = pd.DataFrame({name: values[rows, cols] for name, values in columns.items()})
    return table, region["lat"].values[rows], region["lon"].values[cols]
