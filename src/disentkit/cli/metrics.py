"""``disentkit metrics``, ``disentkit omes`` and ``disentkit encode``: metrics from the command line.

* ``metrics`` scores a ``representations.npz`` + ``classes.csv`` pair with any selection of
  metrics and writes ``{"metrics", "details", "meta"}`` as JSON;
* ``omes`` reproduces the paper's ``compute_omes.py`` on a folder in the reference layout:
  the {pooling: {α: score}} table, association.csv, inactive.csv, relation.csv and a heat map;
* ``encode`` turns a trained run into that reference layout.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from disentkit.cli.common import (
    add_dataset_root_arguments,
    add_device_argument,
    add_json_argument,
    add_seed_argument,
    add_threads_argument,
    apply_cache_dir,
    apply_threads,
    check_device,
    check_folder,
    check_metrics,
    dataset_kwargs,
    format_table,
    write_json_result,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "metrics", help="score representations.npz + classes.csv (OMES, DCI, MIG, ...)"
    )
    p.add_argument("--representations", required=True, help="representations.npz")
    p.add_argument("--classes", required=True, help="classes.csv (factor names as header)")
    p.add_argument("--key", default="mean", help="array of the npz to score (mean or sampled)")
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated: omes,dci,mig,sap,modularity,beta_vae,factor_vae,downstream "
        "(default: all)",
    )
    p.add_argument("--train-fraction", type=float, default=2.0 / 3.0,
                   help="share of the rows the classifiers train on (default: 2/3, the paper's)")
    add_seed_argument(p, "pairs, splits and classifiers")
    p.add_argument("--backend", default="reference",
                   help="reference (scikit-learn) or fast (LightGBM/torch)")
    p.add_argument("--bootstrap", type=int, default=0,
                   help="row resamples for 95%% intervals (0: none; classifiers are fitted once "
                        "and their predictions resampled)")
    p.add_argument(
        "--bootstrap-refits", type=int, default=5,
        help="DCI refits for its disentanglement/completeness intervals (other metrics resample "
        "predictions of one fit)",
    )
    add_threads_argument(p)
    add_json_argument(p, "{metrics, details, meta}")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("omes", help="OMES of a folder in the reference layout, with its heat map")
    p.add_argument("folder", help="folder holding representations.npz + classes.csv")
    p.add_argument("--key", default="mean", help="array of the npz to score (mean or sampled)")
    add_seed_argument(p, "OMES pairs")
    p.add_argument("--pairing", choices=["per_member", "once"], default="per_member",
                   help="per_member (published) or once")
    p.add_argument("--out", default=None,
                   help="folder to write omes.json, the CSVs and relation.png into; never the "
                        "input folder (default: a new folder ./FOLDER-omes)")
    add_json_argument(p, "the scores, association and inactive dimensions")
    p.set_defaults(func=cmd_omes)

    p = sub.add_parser("encode", help="encode a dataset with a trained run (reference layout)")
    p.add_argument("run_dir", help="run folder (config.json + checkpoint/)")
    p.add_argument("--dataset", required=True, help="dataset name (disentkit datasets list)")
    p.add_argument("--n", type=int, default=15008, help="samples to encode (paper: 15008)")
    p.add_argument("--out", required=True, help="folder for representations.npz + classes.csv")
    add_seed_argument(p, "samples and the sampled codes")
    p.add_argument("--batch-size", type=int, default=256, help="images encoded at once")
    add_device_argument(p)
    add_threads_argument(p)
    p.add_argument("--sampling", default="lines", choices=("lines", "uniform"),
                   help="rows drawn as lines differing in one factor (as run/transfer/sweep "
                        "evaluate) or uniformly; never repeating a combination (default: lines)")
    p.add_argument("--line-length", type=int, default=4, help="rows per line with --sampling lines")
    add_dataset_root_arguments(p)
    p.set_defaults(func=cmd_encode)


def _meta(args, n: int, backend: str) -> dict:
    from disentkit.metrics._common import library_versions

    return {
        "versions": library_versions(),
        "backend": backend,
        "seed": args.seed,
        "n": int(n),
        "train_fraction": getattr(args, "train_fraction", None),
        "key": args.key,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def cmd_metrics(args: argparse.Namespace) -> int:
    from disentkit.metrics import score
    from disentkit.metrics.representations import load_representations

    check_metrics(args.metrics, args.backend)  # before reading anything
    if args.bootstrap < 0 or args.bootstrap == 1:
        raise ValueError(f"--bootstrap must be 0 (off) or at least 2 resamples; found {args.bootstrap}")
    apply_threads(args.threads)
    codes, factors, names = load_representations(args.representations, args.classes, args.key)
    start = time.perf_counter()
    flat, details = score(
        codes,
        factors,
        metrics=args.metrics,
        factor_names=names,
        backend=args.backend,
        seed=args.seed,
        train_fraction=args.train_fraction,
        bootstrap=args.bootstrap,
        bootstrap_refits=args.bootstrap_refits,
        n_jobs=args.threads,
        progress=True,  # disentkit.progress: a bar on a terminal, lines when piped, none with -q
    )
    rows = [{"metric": k, "value": f"{v:.4f}"} for k, v in flat.items() if ".ci_" not in k]
    for row in rows:
        low = flat.get(f"{row['metric']}.ci_low")
        if low is not None:
            row["95% interval"] = f"[{low:.4f}, {flat[row['metric'] + '.ci_high']:.4f}]"
    print(format_table(rows))
    boot = details.get("bootstrap")
    if boot:
        refits = max(boot["refits"].values(), default=0)
        print(f"95% intervals over {boot['resamples']} row resamples; classifiers fitted once and "
              "their predictions resampled"
              + (f"; DCI disentanglement/completeness from {refits} refits" if refits else ""))
    meta = _meta(args, len(codes), args.backend)
    meta["elapsed_s"] = round(time.perf_counter() - start, 3)
    write_json_result(args.json, {"metrics": flat, "details": details, "meta": meta})
    return 0


def cmd_omes(args: argparse.Namespace) -> int:
    from disentkit.io import write_json, write_text
    from disentkit.metrics.omes import ALPHAS, POOLINGS, omes
    from disentkit.metrics.representations import CLASSES, REPRESENTATIONS, load_representations

    folder = Path(args.folder)
    dest = omes_out(folder, args.out)
    codes, factors, names = load_representations(
        folder / REPRESENTATIONS, folder / CLASSES, args.key
    )
    out = omes(codes, factors, factor_names=names, pairing=args.pairing, random_state=args.seed)
    d = out.details
    table = {p: {f"{a:.1f}": out[f"omes.alpha_{a:.1f}.{p}"] for a in ALPHAS} for p in POOLINGS}
    rows = [{"alpha": a, **{p: f"{table[p][a]:.4f}" for p in POOLINGS}} for a in table["max"]]
    print(format_table(rows))
    print("association:", ", ".join(f"{k}->{v}" for k, v in d["association"].items()))
    print("inactive dimensions:", d["inactive"] or "none")

    names_used = d["factor_names"]
    record = {
        "scores": table,
        "per_factor": {n: out[f"omes.factor.{n}"] for n in names_used},
        "association": d["association"],
        "inactive": d["inactive"],
        "pairs": d["pairs"],
        "pairs_available": d["pairs_available"],
        "meta": {**_meta(args, len(codes), "numpy"), "pairing": args.pairing},
    }
    write_json(dest / "omes.json", record)
    write_text(
        dest / "association.csv",
        "factor,dimension\n"
        + "".join(f"{k},{'' if v is None else v}\n" for k, v in d["association"].items()),
    )
    write_text(dest / "inactive.csv", "inactive\n" + "".join(f"{i}\n" for i in d["inactive"]))
    write_text(
        dest / "relation.csv",
        "dimension," + ",".join(names_used) + "\n"
        + "".join(
            f"{i}," + ",".join(f"{v:.6f}" for v in row) + "\n"
            for i, row in enumerate(d["relation"])
        ),
    )
    save_relation_heatmap(
        d["relation"], names_used, d["association"], d["inactive"], dest / "relation.png"
    )
    print(f"wrote omes.json, association.csv, inactive.csv, relation.csv, relation.png to {dest}")
    write_json_result(args.json, record)
    return 0


def omes_out(folder: Path, out: str | None) -> Path:
    """Where ``omes`` writes: ``--out``, else a new folder ``./<input name>-omes``; the input
    folder itself is refused (its files are the user's data, not ours to add to)."""
    dest = Path(out) if out else Path.cwd() / f"{folder.resolve().name}-omes"
    if dest.resolve() == folder.resolve():
        raise ValueError(f"--out {dest} is the input folder; choose another folder for the outputs")
    return dest


def save_relation_heatmap(relation, factor_names, association, inactive, path) -> Path:
    """Heat map of the relation matrix M [D, K]: factors on x, dimensions on y, the association
    boxed in red, inactive dimensions greyed (the figure of the paper's Fig. 3)."""
    import numpy as np
    from matplotlib.figure import Figure  # not pyplot: never switch the caller's backend
    from matplotlib.patches import Rectangle

    from disentkit.io import atomic_path

    m = np.asarray(relation, dtype=float)
    d, k = m.shape
    fig = Figure(figsize=(1.2 + 0.9 * k, 1.0 + 0.45 * d), dpi=120)
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(d):
        for j in range(k):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] > 0.6 else "black")
    for j, name in enumerate(factor_names):
        dim = association.get(name)
        if dim is not None:
            ax.add_patch(Rectangle((j - 0.5, dim - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
    inactive = set(inactive)
    ax.set_xticks(range(k), factor_names, rotation=45, ha="right")
    ax.set_yticks(range(d), [f"z{i}" + (" (inactive)" if i in inactive else "") for i in range(d)])
    for i, label in enumerate(ax.get_yticklabels()):
        if i in inactive:
            label.set_color("grey")
    ax.set_xlabel("factor")
    ax.set_ylabel("latent dimension")
    ax.set_title("OMES relation matrix (red: association)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


def cmd_encode(args: argparse.Namespace) -> int:
    from disentkit.data.registry import get_dataset
    from disentkit.evaluate import encode
    from disentkit.metrics.representations import save_representations
    from disentkit.training.checkpoint import load_run

    from disentkit.training.prepare import resolve_device

    if args.n < 3:
        raise ValueError(f"--n must be >= 3; found {args.n}")
    check_folder(args.root, "--root")  # an unknown --dataset fails in get_dataset, before encoding
    check_device(args.device)
    apply_threads(args.threads)
    apply_cache_dir(args)
    device = resolve_device(args.device)
    model, _config = load_run(args.run_dir, device=device)
    dataset = get_dataset(args.dataset, **dataset_kwargs(args))
    enc = encode(model, dataset, args.n, sampling=args.sampling, seed=args.seed,
                 line_length=args.line_length, batch_size=args.batch_size, device=device)
    npz, csv_file = save_representations(args.out, enc.mean, enc.sampled, enc.factors,
                                         dataset.factor_names)
    r = enc.record
    print(f"wrote {npz} and {csv_file} ({r['n']} samples of {r['distinct_combinations']} distinct "
          f"combinations, {enc.mean.shape[1]} dimensions, sampling {r['sampling']}; score with "
          f"the default --train-fraction: its first {r['n_train']} rows train the classifiers)")
    return 0
