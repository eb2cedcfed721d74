"""`pixseg objectness`: pixel objectness maps of images, saved losslessly with heat-map overlays."""

FORMATS = ("both", "npy", "png")


def register(subparsers):
    parser = subparsers.add_parser(
        "objectness", help="pixel objectness (POS) maps from geodesic object proposals",
        description="For each IMAGE, writes STEM_pos.npy (float32, exact) and/or STEM_pos.png (16-bit, "
                    "value * 65535) and STEM_overlay.png, a heat map over the image scaled to the map's "
                    "maximum. Maps are cached by image content, so a second run is fast.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (RGB; grey, palette, RGBA converted)")
    parser.add_argument("--out", required=True, help="folder for the maps and overlays")
    parser.add_argument("--workers", type=int, default=1, help="processes computing maps in parallel")
    parser.add_argument("--format", choices=FORMATS, default="both", help="how to save the maps")
    parser.add_argument("--cache", default=None, help="folder caching maps by image content (default: OUT/pos_cache)")
    # Options left out stay out of the call, so maps share cache entries with `pixseg eval --crf pos`.
    parser.add_argument("--n-superpixels", type=int, default=None, help="target number of superpixels (1000)")
    parser.add_argument("--n-seeds", type=int, default=None, help="seed superpixels (GOP's default, 130)")
    parser.add_argument("--level-sets", type=int, default=None, help="level sets per seed and background (5)")
    parser.add_argument("--max-iou", type=float, default=None,
                        help="IoU at which a proposal counts as a duplicate (0.85)")
    parser.add_argument("--boundary-model", default=None,
                        help="boundary model file from `pixseg train-boundaries` (default: training-free)")
    parser.set_defaults(func=run)


def run(args):
    from pathlib import Path

    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from pixseg.cli.common import boundary_options
    from pixseg.data.base import read_image
    from pixseg.io import atomic_path, check_not_inputs, check_output_folder
    from pixseg.objectness.cache import precompute
    from pixseg.viz import heatmap, save_png

    stems = {}
    for image in args.images:
        stem = Path(image).stem
        if stem in stems:
            raise ValueError(f"{stems[stem]} and {image} would both write {stem}_pos.*; rename one")
        stems[stem] = image
    options = {name: value for name, value in (("n_superpixels", args.n_superpixels), ("n_seeds", args.n_seeds),
                                                ("level_sets", args.level_sets), ("max_iou", args.max_iou))
               if value is not None}
    for flag, value in (("--n-superpixels", args.n_superpixels), ("--n-seeds", args.n_seeds),
                        ("--level-sets", args.level_sets)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} {value}: expected a whole number >= 1")
    out = check_output_folder(args.out)
    if args.cache is not None:
        check_output_folder(args.cache, "--cache")
    check_not_inputs([("--out", out / f"{stem}{suffix}") for stem in stems
                      for suffix in ("_pos.npy", "_pos.png", "_overlay.png")],
                     [("IMAGE", image) for image in args.images])
    options.update(boundary_options(args.boundary_model))
    cache_files = precompute(args.images, args.cache or out / "pos_cache", workers=args.workers, **options)
    for image_path, cache_file in tqdm(list(zip(args.images, cache_files)), desc="saving", unit="img"):
        stem = Path(image_path).stem
        pos = np.load(cache_file)
        if args.format in ("both", "npy"):
            with atomic_path(out / f"{stem}_pos.npy") as tmp:
                np.save(tmp, pos)
        if args.format in ("both", "png"):
            with atomic_path(out / f"{stem}_pos.png") as tmp:
                Image.fromarray(np.round(pos * 65535).astype(np.uint16)).save(tmp, format="PNG")
        peak = float(pos.max())
        save_png(out / f"{stem}_overlay.png", heatmap(pos / peak if peak > 0 else pos, read_image(image_path)))
    print(f"wrote objectness maps of {len(args.images)} image(s) to {out}")
