"""`stars weights list` and `stars weights download NAME`: the command-line side of the registry."""
from __future__ import annotations

from ..errors import InputError


def add_parsers(sub) -> None:
    wp = sub.add_parser("weights", help="named pretrained encoder weights: list them, download them",
                        description="Pretrained ResNet weights by name, for --pretrained, --pretrained-m1 and "
                        "--pretrained-m2 of `stars train`. Each is fetched once into the cache (resumed after an "
                        "interruption, its SHA-256 checked against the prefix its publisher gives) and never again.")
    ws = wp.add_subparsers(dest="weights_command", required=True)
    ws.add_parser("list", help="the registry: names, architectures, bands, licences, and whether cached")
    dl = ws.add_parser("download", help="fetch weights into the cache now (e.g. before a run without internet)")
    dl.add_argument("names", nargs="+", metavar="NAME", help="registry names (`stars weights list`)")


def cmd_weights(args) -> int:
    from ..progress import download_bar
    from ..weights.download import cached, fetch, weights_dir
    from ..weights.registry import REGISTRY, entry

    if args.weights_command == "list":
        print(f"cache: {weights_dir()}")
        for e in REGISTRY.values():
            where = cached(e)
            print(f"{e.name:<26} {e.arch:<9} {', '.join(e.bands)}")
            print(f"    {e.normalisation}")
            print(f"    licence: {e.licence}")
            print(f"    from: {e.source}")
            print(f"    {'cached: ' + str(where) if where else 'not cached: ' + e.url}")
        return 0
    unknown = [n for n in args.names if entry(n) is None]
    if unknown:
        raise InputError(f"not in the registry: {', '.join(unknown)} (`stars weights list` shows the names)")
    for name in args.names:
        e = entry(name)
        with download_bar(e.name) as progress:
            path = fetch(e, progress, log=print)
        print(f"{e.name}: {path}")
    return 0


HANDLERS = {"weights": cmd_weights}
