"""Pretrained encoder weights by name: the registry (`registry`), fetching into the cache once,
with resume and a hash check (`download`), and `stars weights list|download` (`cli`)."""
from .download import cached, fetch, resolve, weights_dir
from .registry import REGISTRY, WeightsEntry, entry

__all__ = ["REGISTRY", "WeightsEntry", "cached", "entry", "fetch", "resolve", "weights_dir"]
