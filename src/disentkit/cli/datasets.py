"""``disentkit datasets list|show|export``."""

from __future__ import annotations

import argparse

from disentkit.cli.common import add_dataset_root_arguments, dataset_kwargs, format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list, show and export datasets")
    dsub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)

    p_list = dsub.add_parser("list", help="one row per registered dataset")
    p_list.set_defaults(func=cmd_list)

    p_show = dsub.add_parser("show", help="PNG of random samples and one traversal per factor")
    p_show.add_argument("name")
    p_show.add_argument("--out", required=True, help="PNG file to write")
    p_show.add_argument("--seed", type=int, default=0)
    add_dataset_root_arguments(p_show)
    p_show.set_defaults(func=cmd_show)

    p_export = dsub.add_parser(
        "export", help="write a generated dataset in its original public file format"
    )
    p_export.add_argument("name")
    p_export.add_argument("--out", required=True, help="file to write (.npz for dSprites, .h5 for Shapes3D)")
    p_export.set_defaults(func=cmd_export)


def cmd_list(args: argparse.Namespace) -> int:
    from disentkit.data.base import describe_class
    from disentkit.data.registry import available_datasets, dataset_class

    rows = [describe_class(dataset_class(name)) for name in available_datasets()]
    print(format_table(rows, ["name", "factors", "image_shape", "kind", "source"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from disentkit.data.registry import get_dataset
    from disentkit.data.show import save_dataset_figure

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
