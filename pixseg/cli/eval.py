"""`pixseg eval`: score a checkpoint on a dataset split, optionally after a CRF; launched by torchrun,
each process scores its share of the images and rank 0 alone prints and writes the result."""

import os
from pathlib import Path

from pixseg.cli.common import (add_amp_argument, add_crf_arguments, add_data_arguments, add_device_argument,
                               add_inference_arguments, amp_from_args, crf_options_from_args, data_from_args,
                               inference_from_args, refiner_from_args)


def register(subparsers):
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint on a dataset split",
                                   description="Score a checkpoint on a split. Launched by torchrun "
                                               "(torchrun --nproc_per_node N -m pixseg eval ...), the processes "
                                               "share the images and sum their confusion matrices: the result "
                                               "equals one process's exactly.")
    parser.add_argument("--checkpoint", required=True)
    add_data_arguments(parser, "dataset folder as its archive unpacks (default: the one the model trained on)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", default=None,
                        help="folder for metrics_SPLIT[_INFERENCE][_amp][_MODEcrf_SETTINGS].json "
                             "(default: beside the checkpoint)")
    add_device_argument(parser)
    add_amp_argument(parser)
    add_inference_arguments(parser)
    add_crf_arguments(parser)
    parser.set_defaults(func=run, multiprocess=True)


def format_metrics(metrics: dict, class_names) -> str:
    width = max(14, *(len(name) for name in class_names))
    lines = [f"{'class':<{width}} {'IoU':>7}"]
    for name, iou in zip(class_names, metrics["iou"]):
        lines.append(f"{name:<{width}} {'-' if iou != iou else f'{100 * iou:6.2f}':>7}")
    lines.append("")
    scores = [("miou", "mean IoU"), ("pixel_acc", "pixel accuracy"), ("mean_acc", "mean accuracy"),
              ("fwiou", "freq.-weighted IoU")]
    # Foreground recall counts every class but 0 as an object: it means something only where 0 is background.
    if class_names[0] == "background":
        scores.append(("fg_recall", "foreground recall"))
    for key, label in scores:
        lines.append(f"{label:<20} {100 * metrics[key]:6.2f}")
    return "\n".join(lines)


def run(args):
    from pixseg.engine import distributed
    from pixseg.engine.train import resolve_device

    device = resolve_device(args.device)
    with distributed.process_group(device):
        evaluate_split(args, distributed.local_device(device))


def evaluate_split(args, device):
    from pixseg.engine import distributed
    from pixseg.engine.datasets import check_model_classes, open_split
    from pixseg.engine.evaluate import evaluate
    from pixseg.engine.inference import prediction_settings, settings_name
    from pixseg.engine.train import load_trained_model
    from pixseg.io import check_output_file, check_output_folder, file_digest, json_text, write_text

    out = check_output_folder(Path(args.out) if args.out else Path(args.checkpoint).parent)
    crf = crf_parameters(args)
    model, config = load_trained_model(args.checkpoint, device)
    inference = inference_from_args(args, config.inference)
    amp = amp_from_args(args, config)
    path = check_output_file(out / f"metrics_{args.split}{settings_name(inference)}{'_amp' if amp else ''}"
                                   f"{settings_suffix(args.crf, crf)}.json")
    dataset = open_split(data_from_args(args, config.data), args.split)
    check_model_classes(dataset, config.data.num_classes, args.checkpoint)
    refine = refiner_from_args(args, default_cache=out / "pos_cache",
                               image_paths=[dataset.image_path(i) for i in range(len(dataset))])
    metrics = evaluate(model, dataset, device, refine=refine, inference=inference, amp=amp,
                       desc=f"eval {args.split} ({inference.mode}, crf: {args.crf})")
    if not distributed.is_main():
        return
    print(format_metrics(metrics, dataset.classes))
    write_text(path, json_text({"split": args.split, "inference": prediction_settings(inference), "amp": amp,
                                "crf": args.crf, "crf_parameters": crf,
                                "checkpoint": os.path.abspath(args.checkpoint),
                                "checkpoint_sha256": file_digest(args.checkpoint), "data": str(dataset.root),
                                **metrics, **dataset.metadata()}))
    print(f"wrote {path}")


def crf_parameters(args) -> dict | None:
    """Every parameter of the post-processing asked for, defaults filled in (None without a CRF)."""
    from pixseg.crf.params import DEFAULT_APPEARANCE, DEFAULT_ITERATIONS, DEFAULT_POS_SCALE, DEFAULT_SMOOTHNESS

    if args.crf == "none":
        return None
    parameters = {"iterations": DEFAULT_ITERATIONS, "appearance": DEFAULT_APPEARANCE,
                  "smoothness": DEFAULT_SMOOTHNESS, **crf_options_from_args(args)}
    if args.crf in ("pos", "center"):
        parameters["pos_scale"] = DEFAULT_POS_SCALE if args.pos_scale is None else args.pos_scale
    return parameters


def settings_suffix(mode: str, crf: dict | None) -> str:
    """Part of the metrics file name: each CRF setting has its own file, so evaluating another
    setting never replaces a result."""
    if crf is None:
        return ""
    suffix = f"_{mode}crf_i{crf['iterations']}_a{'-'.join(f'{v:g}' for v in crf['appearance'])}" \
             f"_s{'-'.join(f'{v:g}' for v in crf['smoothness'])}"
    return suffix + (f"_pos{crf['pos_scale']:g}" if "pos_scale" in crf else "")
