"""Segmenting rasters with a model file: streaming sliding-window inference onto the input's grid
(`infer`) and map sheets over large areas, one process or many under torchrun (`sheets`). The engines
that run the network are in `stars_core.engines`; the tiles they blend in `stars_core.tiling`."""
