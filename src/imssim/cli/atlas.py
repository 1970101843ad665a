"""``imssim atlas ...``: inspect and manage atlases."""

from __future__ import annotations

import json
import sys

from .errors import UserError


def _progress_cb():
    """A rich progress bar on a terminal, plain lines otherwise."""
    from rich.console import Console

    console = Console(stderr=True)
    state = {"last": -1}

    def cb(msg: str, frac: float) -> None:
        pct = int(frac * 100)
        if pct // 10 != state["last"] // 10 or frac >= 1.0:
            console.print(f"[dim]building atlas: {pct:3d}% {msg}[/dim]")
            state["last"] = pct

    return cb


def load(args):
    from ..core.model import store
    from ..core.model.atlas import AtlasFileError

    try:
        return store.load_atlas(getattr(args, "atlas", None), progress=_progress_cb())
    except AtlasFileError as e:
        raise UserError(str(e)) from None


def cmd_info(args) -> int:
    atlas = load(args)
    s = atlas.summary()
    if args.json:
        json.dump(s, sys.stdout, indent=2)
        print()
        return 0
    from rich.console import Console
    from rich.table import Table

    c = Console()
    c.print(f"[bold]atlas[/bold] {s['name']}: {s['structures']} structures, {s['landmarks']} landmarks, "
            f"{s['triangles']:,} triangles")
    t = Table("kind", "count")
    for k, n in sorted(s["by_kind"].items()):
        t.add_row(k, str(n))
    c.print(t)
    if s["danger_structures"]:
        c.print("danger structures: " + ", ".join(s["danger_structures"]))
    for src, what in s.get("muscle_sources", {}).items():
        c.print(f"muscles from {src}: " + (f"{what} structures" if isinstance(what, int) else ", ".join(what)))
    for a in s["attributions"]:
        c.print(f"[dim]{a['source']} ({a['licence']}): {a['attribution']}[/dim]")
    return 0


def cmd_list(args) -> int:
    atlas = load(args)
    items = atlas.find(kind=args.kind, region=args.region, side=args.side)
    if args.landmarks:
        lms = list(atlas.landmarks.values())
        if args.json:
            json.dump([{"id": l.id, "name": l.name, "position": l.position, "structure": l.structure} for l in lms],
                      sys.stdout, indent=2)
            print()
        else:
            for l in lms:
                x, y, z = l.position
                print(f"{l.id:32s} {l.name:45s} ({x:7.1f}, {y:7.1f}, {z:7.1f})")
        return 0
    if args.json:
        rows = []
        for s in items:
            d = s.meta_dict()
            d.pop("meta", None)
            rows.append(d)
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    for s in items:
        inn = ""
        if s.innervation:
            r = s.innervation.roots
            inn = f"{s.innervation.nerve} ({r[0]}-{r[-1]})" if len(r) > 1 else f"{s.innervation.nerve} ({r[0]})"
        harm = f" DANGER: {s.harm}" if s.harm else ""
        print(f"{s.id:36s} {s.kind:12s} {s.region:10s} {s.name:40s} {inn}{harm}")
    if not items:
        print("no structures match", file=sys.stderr)
        return 1
    return 0


def cmd_build(args) -> int:
    from ..core.model import store

    store.load_builtin(progress=_progress_cb(), rebuild=True)
    print(f"built-in atlas cached at {store.builtin_path()}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("atlas", help="inspect and manage anatomy atlases")
    asub = p.add_subparsers(dest="atlas_command", metavar="ACTION", required=True)
    pi = asub.add_parser("info", help="summary of the atlas")
    pi.add_argument("--json", action="store_true")
    pi.set_defaults(func=cmd_info)
    pl = asub.add_parser("list", help="list structures (or landmarks)")
    pl.add_argument("--kind")
    pl.add_argument("--region")
    pl.add_argument("--side", choices=["left", "right", "midline"])
    pl.add_argument("--landmarks", action="store_true", help="list landmarks instead of structures")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_list)
    pb = asub.add_parser("build", help="(re)build the built-in atlas cache")
    pb.set_defaults(func=cmd_build)
    from .atlas_import import add_actions  # import, fetch, use, fit-report

    add_actions(asub)
