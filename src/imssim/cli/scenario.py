"""``imssim scenario validate|new|show|schema``: write and check patient cases."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import UserError


def _atlas(args):
    from .atlas import load

    return load(args)


def cmd_validate(args) -> int:
    from ..core.training.scenario import ScenarioError, find_scenario, validate_file

    atlas = None if args.no_atlas else _atlas(args)
    n_err = n_warn = 0
    for name in args.files:
        if name == "-":
            issues = validate_file("<stdin>", atlas, text=sys.stdin.read())
            for i in issues:
                print(i)
            n_err += sum(1 for i in issues if i.severity == "error")
            n_warn += sum(1 for i in issues if i.severity == "warning")
            continue
        try:
            path = find_scenario(name)
        except ScenarioError as e:
            for i in e.issues:
                print(i)
            n_err += 1
            continue
        issues = validate_file(path, atlas)
        for i in issues:
            print(i)
        errs = sum(1 for i in issues if i.severity == "error")
        n_err += errs
        n_warn += len(issues) - errs
        if not errs and not args.quiet:
            print(f"{path}: ok" + (f" ({len(issues)} warning(s))" if issues else ""))
    sys.stdout.flush()
    if n_err or (args.strict and n_warn):
        print(f"{n_err} error(s), {n_warn} warning(s) in {len(args.files)} file(s)", file=sys.stderr)
        return 1
    return 0


def _load(args, atlas):
    from ..core.training.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(args.file, atlas)
    except ScenarioError as e:
        # every problem, one per line, then a short summary as the error
        for i in e.issues[:-1]:
            print(i, file=sys.stderr)
        raise UserError(str(e.issues[-1])) from None


def cmd_show(args) -> int:
    from ..core.training.scenario import derive_targets, resolve_locus

    atlas = _atlas(args)
    sc = _load(args, atlas)
    targets = derive_targets(sc, atlas)
    if args.json:
        out = sc.model_dump(mode="json")
        out["derived_targets"] = [t.to_dict() for t in targets]
        out["trigger_loci_xyz"] = {
            m.structure: [[round(float(c), 2) for c in resolve_locus(lc, atlas, m.structure)] for lc in m.trigger_loci]
            for m in sc.supersensitive_muscles
        }
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False)
    c = Console(highlight=False, width=max(c.width, 130))
    p, dx = sc.patient, sc.diagnosis
    c.print(f"[bold]{sc.title}[/bold]  ({sc.id}, {sc.difficulty}, ~{sc.estimated_minutes} min, by {sc.author}, {sc.licence})")
    c.print(f"Patient: {p.age}-year-old {p.sex}, {p.habitus} habitus")
    c.print(f"Complaint: {p.presenting_complaint}")
    c.print(f"History: {p.history}")
    for f in p.findings:
        c.print(f"  - {f.kind.replace('_', ' ')}: {f.description}" + (f" [{f.structure}]" if f.structure else ""))
    c.print(f"Diagnosis: {dx.condition}; segment(s) {', '.join(dx.segments)}; side {dx.side}")
    if sc.learning_objectives:
        c.print("Learning objectives:")
        for o in sc.learning_objectives:
            c.print(f"  - {o}")
    if sc.supersensitive_muscles:
        t = Table("supersensitive muscle", "level", "trigger loci")
        for m in sc.supersensitive_muscles:
            t.add_row(m.structure, f"{m.supersensitivity:.2f}", str(len(m.trigger_loci)))
        c.print(t)
    t = Table("target", "kind", "segment(s)", "weight", "tol", "why")
    for r in targets:
        t.add_row(r.structure, r.kind, ",".join(r.segments), f"{r.weight:g}", f"+/-{r.level_tolerance}", r.reason)
    c.print(t)
    s = sc.safety
    watch = "all danger structures" if s.watch is None else ", ".join(s.watch)
    c.print(f"Safety: watching {watch}; needles {', '.join(f'{x:g}' for x in s.needles.lengths_mm)} mm, "
            f"max {s.max_needles}; breach fails: {'yes' if s.breach_fails else 'no'}")
    for z in s.zones:
        c.print(f"  zone: within {z.radius_mm:g} mm of {z.landmark}, needles <= {z.max_length_mm:g} mm")
    w = sc.scoring.weights.normalised()
    c.print("Scoring: " + ", ".join(f"{k} {v:.0%}" for k, v in w.items()) + f"; pass mark {sc.scoring.pass_mark:g}%")
    if sc.quiz:
        c.print(f"Quiz: {len(sc.quiz)} item(s)")
        for q in sc.quiz:
            c.print(f"  - {q.question}")
    for i in sc.warnings:
        c.print(f"[yellow]{i}[/yellow]")
    return 0


def cmd_new(args) -> int:
    from ..core.training.scenario import ScenarioError, load_scenario
    from ..core.training.scenario.template import new_scenario_text

    atlas = _atlas(args)
    try:
        text = new_scenario_text(atlas, args.segment, args.side, args.condition, scenario_id=args.id)
    except ValueError as e:
        raise UserError(str(e)) from None
    out = Path(args.output) if args.output else Path(f"{args.id or _slug(args)}.yaml")
    # the template must itself be valid
    try:
        load_scenario(out, atlas, text=text)
    except ScenarioError as e:  # pragma: no cover - a template bug
        raise UserError(f"internal: the generated scenario is invalid: {e.errors[0]}") from None
    if str(out) == "-":
        sys.stdout.write(text)
        return 0
    if out.exists() and not args.force:
        raise UserError(f"{out}: already exists; choose another --output or add --force")
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _slug(args) -> str:
    from ..core.training.scenario.template import slug

    return slug(args.segment, args.side, args.condition)


def cmd_schema(args) -> int:
    from ..core.training.scenario import scenario_json_schema

    text = json.dumps(scenario_json_schema(), indent=2) + "\n"
    if args.output:
        if Path(args.output).exists() and not args.force:
            raise UserError(f"{args.output}: already exists; choose another --output or add --force")
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def register(sub) -> None:
    p = sub.add_parser("scenario", help="validate, create and inspect scenario files")
    ss = p.add_subparsers(dest="scenario_command", metavar="ACTION", required=True)

    v = ss.add_parser("validate", help="check scenario files (exit 1 on any error)")
    v.add_argument("files", nargs="+", metavar="FILE", help="scenario files or library ids ('-': stdin)")
    v.add_argument("--no-atlas", action="store_true", help="check the schema only, not the names")
    v.add_argument("--strict", action="store_true", help="treat warnings as errors")
    v.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    v.set_defaults(func=cmd_validate)

    n = ss.add_parser("new", help="write a commented starting scenario from the segmental rule")
    n.add_argument("--segment", required=True, help="affected segment(s), e.g. L5 or C5,C6")
    n.add_argument("--side", required=True, choices=["left", "right", "bilateral"])
    n.add_argument("--condition", required=True, help='e.g. "chronic low back pain"')
    n.add_argument("--id", help="scenario id (default: from segment, side and condition)")
    n.add_argument("-o", "--output", help="file to write ('-' for stdout; default: ID.yaml)")
    n.add_argument("--force", action="store_true", help="overwrite an existing file")
    n.set_defaults(func=cmd_new)

    s = ss.add_parser("show", help="print a scenario and its derived targets")
    s.add_argument("file", metavar="FILE", help="scenario file or library id")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_show)

    j = ss.add_parser("schema", help="print the JSON Schema of the scenario format")
    j.add_argument("-o", "--output", help="write to this file instead of stdout")
    j.add_argument("--force", action="store_true", help="overwrite an existing file")
    j.set_defaults(func=cmd_schema)
