"""``cnnbench fleet``: several machines' results side by side.

- :mod:`.merge`: results folders (and published tables) read, checked and merged into one long :class:`Fleet`,
  one row per device × target × model, each device labelled by its host and a short form of its hardware;
- :mod:`.ranks`: the device × model matrix, each model's rank per device with Spearman ρ and Kendall τ against a
  reference device, the Pareto fronts per device, INT8 against fp32;
- :mod:`.charts`, :mod:`.page`: the bump chart and the fronts overlaid; ``fleet/README.md`` and its CSV files,
  written whole or not at all;
- :mod:`.published`: ncnn's published benchmark table as fleet rows; :mod:`.imports`: device logs imported;
  :mod:`.ray_run`: the report run on Ray nodes.
"""
