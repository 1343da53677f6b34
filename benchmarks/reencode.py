"""Copy an image folder with every image re-encoded smaller (WebP), keeping its layout.

    python benchmarks/reencode.py ../shared/data/caltech101 caltech101-webp128 --side 128 --quality 80

Used to move ``../shared/data/caltech101`` (107 MB of JPEGs at 144 px) to a machine that takes 64 MB
at most: at 128 px (the evaluation resize of a 112 px crop) and WebP quality 80 it is 38 MB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--side", type=int, default=128, help="shorter side in pixels (images never grow)")
    ap.add_argument("--quality", type=int, default=80)
    args = ap.parse_args()
    n = 0
    for p in sorted(args.src.rglob("*.jpg")):
        out = (args.dst / p.relative_to(args.src)).with_suffix(".webp")
        out.parent.mkdir(parents=True, exist_ok=True)
        im = Image.open(p).convert("RGB")
        s = args.side / min(im.size)
        if s < 1:
            im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))), Image.BICUBIC)
        im.save(out, "WEBP", quality=args.quality)
        n += 1
    print(f"{n} images -> {args.dst}")


if __name__ == "__main__":
    main()
