"""Real server software on 127.0.0.1 for the tests of code that downloads (issue 42): a STAC API
(stac-fastapi-pgstac on PostgreSQL + PostGIS, stac.py), an asset server with HTTP Range support and
switchable faults (assets.py), and the catalogue they serve (catalogue.py, from recorded real items)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .assets import AssetServer, Fault, FaultProxy, start_assets, start_proxy  # noqa: F401
from .stac import ServerUnavailable, StacServer, start_stac  # noqa: F401


@dataclass
class Servers:
    stac: StacServer  # Planetary Computer's collections
    assets: AssetServer
    catalogue: dict
    earth_search: StacServer | None = None  # Earth Search's sentinel-2-l2a, a second API on the same cluster

    def stop(self) -> None:
        self.assets.stop()
        if self.earth_search is not None:
            self.earth_search.stop()
        self.stac.stop()


def start_servers(folder: Path, **catalogue) -> Servers:
    """Both servers, loaded with the catalogue (`catalogue`: build_catalogue's size and dates);
    stopped again if any step fails."""
    from .catalogue import build_catalogue, earth_search_items, recorded

    (folder / "assets").mkdir(parents=True, exist_ok=True)
    assets = start_assets(folder / "assets")
    try:
        stac = start_stac(folder / "stac")
    except BaseException:
        assets.stop()
        raise
    servers = Servers(stac, assets, {})
    try:
        servers.catalogue = build_catalogue(folder, assets.url, **catalogue)
        stac.load(servers.catalogue["collections"], servers.catalogue["items"] + servers.catalogue["real_items"]
                  + servers.catalogue["io_lulc_items"])
        servers.earth_search = stac.another_api("earthsearch")
        servers.catalogue["earth_search_items"] = earth_search_items(servers.catalogue["items"])
        servers.earth_search.load([recorded("earth-search-sentinel-2-l2a-collection.json")],
                                  servers.catalogue["earth_search_items"])
    except BaseException:
        servers.stop()
        raise
    return servers
