"""The geothermal heat-flow half: measurements + feature grids → one 0.5° Zarr grid → model → maps."""
