"""Labelled window sets from real data: readers, fixed-length windows, honest splits, augmentation.

:func:`build_windows` (:mod:`.build`) turns real labelled sets, ingested stores (with a catalog or a
trigger mask) and existing window stores into one labelled-window Zarr v3 store (schema:
``docs/windows-schema.md``, written and opened by :mod:`seisgrid.seismic.windowstore`): ``waveform``
(window, component Z/N/E, sample) at 100 Hz, 25 s long, with ``label`` (1 earthquake, 0 noise), its
``subclass``, ``distance_km``, picks, provenance and two splits.

Modules: :mod:`.base` (:class:`Record`, :class:`Skip`, :class:`WindowsError`, regions, station
coordinates, the reader registry and :func:`detect_format`), one reader per format (:mod:`.windows`,
:mod:`.store`, :mod:`.seisbench`, :mod:`.stead`, :mod:`.phasenet`, :mod:`.eventfiles`, :mod:`.pfo`),
:mod:`.windowing` (resampling, windows), :mod:`.splits`, :mod:`.augment` and :mod:`.build`. A new format
is one reader module plus one entry of :data:`.base.REGISTRY`.

Sub-classes (``subclass``) and distance (``distance_km``) of every window
-------------------------------------------------------------------------
``earthquake`` (label 1); ``pre_event_noise`` (label 0): the pre-P part of an event record;
``quiet_noise`` (label 0): noise away from any known event (noise records, store windows far from catalog
picks or outside the trigger mask); ``icequake`` (label 0): ice events (a source whose class is
``icequake``) and synth's icequake-like transients — the noise that looks like earthquakes.
``distance_km`` is the epicentral distance when the event and station coordinates are known (NaN
otherwise). Stores written before these variables existed still open; consumers treat them as unknown
(:func:`seisgrid.seismic.windowstore.subclass_of`, :func:`~seisgrid.seismic.windowstore.distance_of`).

Class of a source's events: ``earthquake`` unless the ``source_class`` option (``SOURCE=CLASS``, SOURCE the
folder name or path, e.g. ``thwaites-icequakes=icequake``) or a ``labels.yaml`` in the folder
(``class: icequake``) says ``icequake``: then the window around each P is label 0, sub-class ``icequake``
(its ``p_index`` is the ice event's P). Never guessed from a folder name.

Regions: known folder names (:data:`.base.KNOWN_REGIONS`) or coordinates: the first box of
:data:`.base.REGION_BOXES` (southern/northern California, northern Chile, ``antarctica-thwaites``,
``antarctica-rutford``, ``antarctica``), else the 5° cell holding the point (``cell-45N-125W``,
:func:`.base.region_of`), so new data get a distinct region; ``unknown`` only without coordinates.
Station coordinates for any source: the ``stations`` option (CSV or StationXML, :func:`.base.read_stations`).

Channels (event files and stores): one sensor per station, never two mixed; Z/N/E slots, ``1``/``2`` go to
N/E with the orientation unknown (the store's ``orientation_unknown`` attribute lists those stations):
:mod:`seisgrid.seismic.channels`.

Sources (a folder's format is detected from the files it holds, :func:`detect_format`; one module each)
---------------------------------------------------------------------------------------------------------
``windows``
    A window store (``seisgrid windows`` output): its non-augmented windows are merged with the other
    sources and everything is split (and augmented) again with the same rules (:mod:`.windows`).
``stead``
    STEAD-style ``waveforms.hdf5`` + ``metadata.csv`` (e.g. ``stead-eqt-sample``): datasets
    (samples, 3) in component order E, N, Z at ``trace_sampling_rate_hz`` (default 100 Hz), keyed by
    ``trace_name`` under ``data/`` (full STEAD) or ``earthquake/local/`` and ``non_earthquake/noise/``
    (the EQTransformer sample); manual P and S picks in ``p_arrival_sample`` / ``s_arrival_sample``;
    noise records (``trace_category`` with ``noise``) give ``quiet_noise``.
``phasenet``
    PhaseNet NCEDC ``.npz`` files (+ ``waveform.csv``): ``data`` (samples, 3) at 100 Hz, column
    order from ``channels`` (``EHE_EHN_EHZ``); single-channel files (``EHZ``) hold the channel in the
    Z slot of an E, N, Z layout and two all-zero columns, which are flagged absent. P at ``itp``
    (3000), S at ``its``. The file name ``NET_STA_YYYYMMDDHHMMSScc[_nn].npz`` gives network, station
    and the event id; whether its time is the window start or the origin is not documented, so
    ``start_time`` is NaT for these windows.
``seisbench``
    SeisBench-format ``waveforms.hdf5`` (buckets, ``trace_name`` like ``bucket0$0,:3,:1200``) +
    ``metadata.csv`` (e.g. ``seisbench-ipoc-dummy``: 20 Hz, ZNE, channel-first). When the metadata
    has no P pick (``trace_p_arrival_sample`` / ``trace_P_arrival_sample``), **P is predicted** as the
    first P arrival (``p``/``P``) of ``obspy.taup.TauPyModel("iasp91")`` from the hypocentre
    (``source_*``) to the station (``station_*``; elevation ignored), assuming the trace starts at
    ``trace_start_time``. Predicted picks can be off by a second or more; ``s_index`` stays -1.
``events``
    Event miniSEED files with picks in a QuakeML file, a CSV or Nordic S-files (:mod:`.eventfiles`: the
    file → event match, the P rule, CSV columns), e.g. ``thwaites-icequakes`` (with ``source_class
    thwaites-icequakes=icequake``).
``pfo``
    Position-labelled single-trace windows ``NET.STA.LOC.CHA_START_END.mseed`` without picks (e.g.
    ``pfo-anza-windows``): onset re-derived by STA/LTA, pre-event noise screened for transients
    (:mod:`.pfo`).
``store``
    An ingested waveform store (``seisgrid ingest``), with a catalog CSV in the format of
    :mod:`seisgrid.seismic.synth`'s ``catalog.csv`` (event_id, station NET.STA, p_time, s_time,
    magnitude, snr, ...): earthquake windows around each catalog P and noise windows at least
    ``catalog_noise_seconds`` (60 s) from every catalog P and S (any station); transients listed in a
    ``transients.csv`` beside the catalog (synth's icequakes) are **noise by definition** (sub-class
    ``icequake``): noise windows containing them are chosen first. Without a catalog: ``quiet_noise``
    windows outside an STA/LTA trigger mask. Noise candidates only where every channel has data
    (:mod:`.store`).

Windows (:mod:`.windowing`)
---------------------------
Every record is resampled to ``sampling_rate`` (100 Hz) with :func:`scipy.signal.resample_poly`
(polyphase FIR with a Kaiser-windowed anti-aliasing/anti-imaging low-pass, after removing the mean),
then cut into ``window_seconds`` (25 s = 2500 samples) windows; the mean is removed per component,
missing components are zeros with ``present=False``.

- Earthquake windows start ``pre_p_seconds`` ± ``pre_p_jitter_seconds`` (8 ± 3 s, drawn per record from
  the seed) before P — P anywhere from 5 to 11 s into the window, never at one fixed place a classifier
  could learn, and after the first 5 s that an STA/LTA needs to warm up — or at the record start when P comes
  earlier (``p_index`` records where P is), or earlier when the record ends before the window would.
- Noise windows come only from the pre-P segment of an event record and end at least
  ``noise_margin_seconds`` (5 s) before P (up to ``noise_per_record`` non-overlapping windows from the
  start of the record, or the reader's screened candidates for ``pfo``), or from whole noise records.

**Assumption:** the pre-P segment of an event record is noise. It may contain unseen (uncatalogued,
small or distant) earlier events, so a few "noise" windows may hold real signals; the 5 s margin only
protects against early P picks and emergent onsets, not against such events. None of the real sets has
an independent noise class (``$SEISGRID_DATA/seismic/README.md``).

Records with NaN/infinite samples, all-zero data or fewer samples than one window, a P outside the
record, or a gap in the store, are skipped and counted with their reason (``summary["skipped"]``), never
dropped silently; so are screened-out noise candidates. Event records whose pre-P segment is too short for a
noise window are counted in ``summary["no_noise"]``; a source that gives no window, or no noise window
although noise was requested, is named in ``summary["warnings"]`` (exit status 3).

Splits (:mod:`.splits`)
-----------------------
``split`` (train/val/test, ``split_fractions`` 70/15/15, seeded) assigns whole connected components of
the graph that links each window's event and station, so no event and no station appears in two splits
(a dataset from one station is one component). Components are shuffled with the seed, then placed
largest first into the split furthest below its share.

``split_region`` is the cross-region split: every component holding a window whose ``region`` is in
``test_regions`` or whose network is in ``test_networks`` is ``test``; the rest is split into train/val
in the ratio of the first two ``split_fractions``. Either list may be empty: ``[]`` in YAML/Python, or the
single value ``none`` (or ``[]``) on the command line (``--test-networks none``). The default holds out
STEAD (southern California, TA.109C) and IPOC (northern Chile) earthquakes plus the PhaseNet networks
BG (The Geysers) and NN (Nevada), whose records give both earthquake and pre-P noise windows, so the test
split has both classes and precision, recall and false-positive rate are defined.

Augmentation (:mod:`.augment`)
------------------------------
``augment_factor`` × (train earthquake windows) extra windows, ``augmented=True``, made only from
windows that are ``train`` in both ``split`` and ``split_region`` (so they never leak into either test
or val): a real earthquake window, shifted by up to ± ``augment_shift_seconds`` (edges zero-filled
and tapered), scaled so that its post-P RMS (2 s after P) over the RMS of a real noise window is the SNR
drawn uniformly from ``augment_snr_db``, added to that noise window, and the sum scaled by a
log-uniform factor from ``augment_scale``. The earthquake window keeps its own recorded background, so
the effective SNR is at most the drawn one. ``event_id``, ``station`` and ``network`` are the
earthquake's; ``snr_db`` the drawn SNR; components present in both.
"""

from __future__ import annotations

from seisgrid.seismic.labelled.base import (
    FORMATS,
    REGISTRY,
    Reader,
    Record,
    Skip,
    WindowsError,
    detect_format,
    distance_km,
    read_stations,
    reader,
    region_of,
)
from seisgrid.seismic.labelled.build import build_windows
from seisgrid.seismic.labelled.eventfiles import read_picks
from seisgrid.seismic.labelled.phasenet import read_phasenet
from seisgrid.seismic.labelled.seisbench import read_seisbench
from seisgrid.seismic.labelled.splits import (
    assign_region_splits,
    assign_splits,
    split_groups,
)
from seisgrid.seismic.labelled.stead import read_stead
from seisgrid.seismic.labelled.store import read_store
from seisgrid.seismic.labelled.windowing import cut_windows, resample
from seisgrid.seismic.windowstore import COMPONENTS, open_dataset

__all__ = [
    "COMPONENTS", "FORMATS", "REGISTRY", "Reader", "Record", "Skip", "WindowsError", "assign_region_splits",
    "assign_splits", "build_windows", "cut_windows", "detect_format", "distance_km", "open_dataset",
    "read_phasenet", "read_picks", "read_seisbench", "read_stations", "read_stead", "read_store", "reader",
    "region_of", "resample", "split_groups",
]
