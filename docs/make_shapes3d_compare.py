"""Write docs/figures/shapes3d_compare.png: real Shapes3D GIF frames above disentkit's renders.

Usage: python docs/make_shapes3d_compare.py [GIF] [OUT]
(defaults: tests/data/3dshapes.gif and docs/figures/shapes3d_compare.png)
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the GIF reader is a test helper

from shapes3d_reference import save_compare_figure  # noqa: E402


def main(argv: list[str]) -> int:
    gif = Path(argv[0]) if argv else HERE.parent / "tests" / "data" / "3dshapes.gif"
    out = Path(argv[1]) if len(argv) > 1 else HERE / "figures" / "shapes3d_compare.png"
    if not gif.is_file():
        print(f"reference GIF not found: {gif}", file=sys.stderr)
        return 2
    print(f"wrote {save_compare_figure(gif, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
