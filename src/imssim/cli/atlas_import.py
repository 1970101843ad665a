"""``imssim atlas import|fetch|use|fit-report``: bring real anatomy meshes in.

Added to the ``atlas`` command's actions by :func:`add_actions` (called from
``cli/atlas.py``). Heavy modules are imported inside the commands.
"""

from __future__ import annotations

import json
import sys

from .errors import UserError


def _user_errors(fn):
    def run(args):
        from ..core.model.atlas import AtlasFileError
        from ..core.model.importer import ManifestError, MeshFileError
        from ..core.model.importer.fetch import FetchError

        try:
            return fn(args)
        except (ManifestError, MeshFileError, FetchError, AtlasFileError) as e:
            raise UserError(str(e)) from None

    run.__name__ = fn.__name__
    return run


def _progress():
    from .atlas import _progress_cb

    return _progress_cb()


def _f(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _print_fit(name: str, fit: dict, out=None) -> None:
    """The fit report as rich tables: stage (a), the segments of stage (b), per structure
    the figures after each stage, and per stage the muscles' median and worst five."""
    from rich.console import Console
    from rich.table import Table

    c = Console(file=out or sys.stdout, highlight=False)
    c = Console(file=out or sys.stdout, highlight=False, width=max(c.width, 130))
    t = fit.get("transform", {})
    rms = fit.get("rms_mm")
    if rms is None:
        c.print(f"atlas {name}: not aligned ({fit.get('note', fit.get('method'))})")
    else:
        on = f" on {fit['fitted_on']} ({', '.join(fit.get('fitted', []))})" if fit.get("fitted_on") else ""
        c.print(f"atlas {name}: stage (a) {fit.get('method')}{on}, start from {fit.get('init')}: scale "
                f"{t.get('scale', 1):.3f}, rotation {t.get('rotation_deg', 0):.1f} deg, RMS {rms:.1f} mm")
    segs = fit.get("segments", {})
    if segs:
        st = Table("segment", "fitted by", "bones", "scale", "turn deg", "RMS mm", "note",
                   title="stage (b): per body segment (after stage a)")
        for seg, d in sorted(segs.items()):
            tr = d.get("transform", {})
            st.add_row(seg, d.get("how", "bones"), ", ".join(d.get("bones", d.get("structures", []))) or "-",
                       _f(tr.get("scale"), ".3f"), _f(tr.get("rotation_deg"), ".1f"), _f(d.get("rms_mm"), ".1f"),
                       d.get("note", ""))
        c.print(st)
    rows = fit.get("structures", {})
    if rows:
        staged = any("rigid" in d for d in rows.values())
        cols = ["structure", "follows"] + (["rigid mm", "rigid Dice"] if staged else []) + ["centroid mm", "Dice", "IoU", ""]
        tt = Table(*cols, title="per structure: centroid distance to the built-in counterpart, voxel overlap")
        for sid, d in sorted(rows.items()):
            r = d.get("rigid", {})
            follows = ", ".join(f"{k} {v:.0%}" if v < 0.995 else k for k, v in
                                sorted(d.get("segments", {}).items(), key=lambda kv: -kv[1])) or "-"
            tt.add_row(sid, follows, *([_f(r.get("centroid_distance_mm"), ".1f"), _f(r.get("dice"), ".2f")] if staged else []),
                       f"{d['centroid_distance_mm']:.1f}", _f(d.get("dice"), ".2f"), _f(d.get("iou"), ".2f"),
                       "same source" if d.get("same_source") else ("bone" if d.get("kind") == "bone" else ""))
        c.print(tt)
    stages = fit.get("stages", {})
    if stages:
        sm = Table("stage", "muscles", "median Dice", "median centroid mm", "worst 5 (Dice, mm)",
                   title="muscles present in both (independent: not made from the same source file)")
        for stage, d in stages.items():
            for which in ("muscles", "independent"):
                x = d.get(which, {})
                if not x.get("n"):
                    continue
                worst = ", ".join(f"{w['structure']} {w['dice']:.2f}/{w['centroid_distance_mm']:.0f}"
                                  for w in x.get("worst", []))
                sm.add_row(stage if which == "muscles" else f"{stage} (independent)", str(x["n"]),
                           f"{x['median_dice']:.2f}", f"{x['median_centroid_mm']:.1f}", worst)
        c.print(sm)


def _print_frame(fr: dict, out=None) -> None:
    """The source frame the import used, how it was decided, and the anatomy's evidence."""
    out = out or sys.stdout
    if not fr:
        return
    conf = fr.get("confidence")
    sure = f", sure {conf:.2f}" if isinstance(conf, (int, float)) else ""
    how = {"stated": "stated in the manifest", "detected": "detected from the anatomy",
           "documented": "the profile's documented frame"}.get(fr.get("how"), fr.get("how", ""))
    print(f"source frame: {fr.get('units')} {fr.get('axes')} ({fr.get('handedness')}-handed; {how}{sure})"
          + (f"; {fr['note']}" if fr.get("note") else ""), file=out)
    for line in fr.get("detected", {}).get("evidence", []):
        print(f"  {line}", file=out)


@_user_errors
def cmd_import(args) -> int:
    from ..core.model import store
    from ..core.model.importer import import_atlas

    atlas = import_atlas(args.manifest, name=args.name, profile=args.profile, progress=_progress(),
                         parts_list=args.parts_list, fill=args.fill, force=getattr(args, "force", False))
    s = atlas.summary()
    print(f"imported {s['structures']} structures, {s['landmarks']} landmarks into atlas {atlas.name!r} "
          f"({store.imported_path(atlas.name)})")
    _print_frame(atlas.meta.get("frame", {}))
    skipped = atlas.meta.get("skipped_files", [])
    if skipped:
        print(f"skipped {len(skipped)} files the {atlas.meta.get('profile')} profile does not import "
              f"(also in the atlas's meta, skipped_files):")
        for d in skipped:
            print(f"  {d['file']}: {d['reason']}")
    _print_fit(atlas.name, atlas.meta.get("fit", {}))
    print(f"use it with: imssim --atlas {atlas.name} ...   or   imssim atlas use {atlas.name}")
    return 0


@_user_errors
def cmd_fetch(args) -> int:
    from ..core.model.importer.fetch import default_dest, fetch_vhm

    dest = args.dest or default_dest(args.dataset)
    files = fetch_vhm(dest, mirror=args.mirror, progress=_progress())
    print(f"{len(files)} files checked (sha256) in {dest}")
    if args.do_import:
        args.manifest, args.profile, args.name, args.parts_list = str(dest), "vhm", args.dataset, None
        args.force = getattr(args, "force", False)
        args.fill = args.fill
        return cmd_import(args)
    print(f"import them with: imssim atlas import {dest} --profile vhm --name {args.dataset}")
    return 0


def cmd_use(args) -> int:
    from ..core.model import store

    try:
        store.use_atlas(args.name)
    except KeyError as e:
        raise UserError(e.args[0]) from None
    print(f"atlas {args.name!r} selected")
    return 0


@_user_errors
def cmd_fit_report(args) -> int:
    from ..core.model import store
    from ..core.model.atlas import Atlas

    if args.name == store.BUILTIN:
        raise UserError("the built-in atlas is the reference; it has no fit report")
    path = store.imported_path(args.name)
    if not path.exists():
        raise UserError(f"no imported atlas named {args.name!r}; available: {', '.join(store.available_atlases())}")
    atlas = Atlas.load(path)
    fit = atlas.meta.get("fit", {})
    if args.json:
        json.dump(fit, sys.stdout, indent=2)
        print()
    else:
        _print_fit(args.name, fit)
    return 0


def add_actions(asub) -> None:
    """Add import/fetch/use/fit-report to the ``atlas`` subcommand's action parsers."""
    p = asub.add_parser("import", help="import an atlas from a manifest (or a dataset folder with --profile)")
    p.add_argument("manifest", metavar="MANIFEST", help="manifest YAML file, or a dataset folder with --profile")
    p.add_argument("--name", help="atlas name (default: the manifest's name)")
    p.add_argument("--profile", choices=["vhm", "bodyparts3d", "zanatomy"], help="dataset profile naming the files")
    p.add_argument("--parts-list", help="BodyParts3D parts list (default: found in the folder)")
    p.add_argument("--fill", choices=["none", "builtin"], help="add the built-in structures the dataset lacks "
                                                               "(default: the manifest's fill, else none)")
    p.add_argument("--force", action="store_true", help="replace an imported atlas of the same name")
    p.set_defaults(func=cmd_import)
    p = asub.add_parser("fetch", help="download an open dataset (sha256-checked)")
    p.add_argument("dataset", choices=["vhm-lowerlimb"])
    p.add_argument("--mirror", help="local folder or URL holding the files (default: $IMSSIM_DATA_MIRROR, "
                                    "else the pinned GitHub URLs)")
    p.add_argument("--dest", help="where to put the files (default: the imssim cache)")
    p.add_argument("--import", dest="do_import", action="store_true", help="import them as an atlas afterwards")
    p.add_argument("--fill", choices=["none", "builtin"], default=None,
                   help="with --import: add the built-in structures the dataset lacks")
    p.add_argument("--force", action="store_true", help="with --import: replace an imported atlas of the same name")
    p.set_defaults(func=cmd_fetch)
    p = asub.add_parser("use", help="select the atlas later runs use")
    p.add_argument("name")
    p.set_defaults(func=cmd_use)
    p = asub.add_parser("fit-report", help="how well an imported atlas fits the built-in skeleton")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fit_report)
