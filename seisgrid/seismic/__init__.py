"""The detection half, in two layers (imports go from the detection layer down, never up; tests/test_house.py).

Archive/store layer — miniSEED in, the waveform store out:
    ``archive`` (find files), ``mseed`` (record index, decoding), ``layout`` (sample grid, manifest paths),
    ``ingest`` (scan → plan → write), ``store`` (read, inventory, export), ``synth`` (synthetic archives).

Detection layer — on top of stores and labelled sets:
    ``labelled`` (window sets: one reader per format), ``windowstore`` (the window store's schema),
    ``spectrogram``, ``stalta`` and ``forest`` (baselines), ``models``, ``train``, ``metrics``, ``evaluate``,
    ``detect`` → ``associate`` → ``catalog``, ``attribution``.
"""
