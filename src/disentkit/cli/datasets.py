"""``disentkit datasets list|show|export|verify``."""

from __future__ import annotations

import argparse

from disentkit.cli.common import (
    MAX_COLUMNS,
    add_cache_argument,
    add_dataset_root_arguments,
    add_json_argument,
    add_seed_argument,
    apply_cache_dir,
    dataset_kwargs,
    format_table,
    write_json_result,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list, show and export datasets")
    dsub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)

    p_list = dsub.add_parser("list", help="one row per registered dataset")
    add_json_argument(p_list, "every dataset's name, factors, image shape, kind and source")
    p_list.set_defaults(func=cmd_list)

    p_show = dsub.add_parser("show", help="PNG of random samples and one traversal per factor")
    p_show.add_argument("name", help="dataset name (see `disentkit datasets list`)")
    p_show.add_argument("--out", required=True, help="PNG file to write")
    add_seed_argument(p_show, "samples and traversal base")
    add_dataset_root_arguments(p_show)
    p_show.set_defaults(func=cmd_show)

    p_export = dsub.add_parser(
        "export", help="write a generated dataset in its original public file format"
    )
    p_export.add_argument("name", help="dsprites or shapes3d")
    p_export.add_argument("--out", required=True, help="file to write (.npz for dSprites, .h5 for Shapes3D)")
    p_export.set_defaults(func=cmd_export)

    p_verify = dsub.add_parser(
        "verify", help="read a whole downloaded dataset once; list unreadable or wrong-size files"
    )
    p_verify.add_argument("name", help="dataset name (see `disentkit datasets list`)")
    p_verify.add_argument("--root", required=True,
                          help="folder (or file) of the downloaded files: ONE dataset (required)")
    add_cache_argument(p_verify)
    p_verify.set_defaults(func=cmd_verify)


def cmd_list(args: argparse.Namespace) -> int:
    from disentkit.data.base import describe_class
    from disentkit.data.registry import available_datasets, dataset_class

    rows = [describe_class(dataset_class(name)) for name in available_datasets()]
    shown = [{**r, "image": r["image_shape"], "factors": r["factors"].replace(", ", " ")}
             for r in rows]
    print(format_table(shown, ["name", "image", "kind", "factors"], max_width=MAX_COLUMNS))
    print("each dataset's source and licence: disentkit datasets list --json FILE")
    write_json_result(args.json, rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from disentkit.data.registry import get_dataset
    from disentkit.viz.dataset import save_dataset_figure

    apply_cache_dir(args)
    dataset = get_dataset(args.name, **dataset_kwargs(args))
    out = save_dataset_figure(dataset, args.out, seed=args.seed)
    print(f"wrote {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from disentkit.data.registry import get_dataset

    dataset = get_dataset(args.name)
    export = getattr(dataset, "export", None)
    if export is None:
        raise ValueError(
            f"dataset {args.name!r} has no public file format to export; "
            "exportable: dsprites (npz) and shapes3d (h5)"
        )
    out = export(args.out)
    print(f"wrote {out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when every file and row reads, else list the problems and exit 2."""
    import sys

    from disentkit.data.registry import dataset_class
    from disentkit.data.verify import verify_dataset

    dataset_class(args.name)  # an unknown name fails here, listing the valid ones
    report = verify_dataset(args.name, args.root, cache_dir=args.cache_dir)
    for where, problem in report.problems:
        print(problem if problem.startswith(where) else f"{where}: {problem}")
    summary = (f"{args.name} at {args.root}: {report.files_checked} image files and "
               f"{report.rows_checked} rows read, {len(report.problems)} problem(s)")
    print(summary, file=sys.stderr if report.problems else sys.stdout)
    return 0 if report.ok else 2
