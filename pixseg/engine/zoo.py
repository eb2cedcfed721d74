"""The zoo study: which architecture for my data? Every model at one budget, on one dataset.

Each architecture is trained with the same schedule, loss and data, evaluated on val without and
with the dense CRF (parameters tuned once, on held-out training images), and costed: parameters,
GFLOPs of a 512 x 512 forward pass and CPU milliseconds per 512 x 512 image, as trained. The
stages and their files follow `pixseg experiment` (experiment.py), whose pieces this reuses, so a
rerun resumes from whatever is on disk.

Budgets: "quick" trains narrow versions (QUICK_OPTIONS: channel widths of 1/8 to 1/4, ResNet-18
where the paper has ResNet-101, VGG16 with BatchNorm, the basic context module) from scratch on a
CPU; "full" trains the published configurations (the builders' defaults). Dilation is trained as
its authors train it: the front end for half the iterations, then the whole network, context
module added, for the other half (FIRST_STAGES).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from pixseg.engine.config import load_config
from pixseg.engine.experiment import (MODEL_TITLES, TUNE_TRIALS, Stages, check_study, evaluation, format_table,
                                      stage_length, study_data, table_csv, table_markdown, train_all,
                                      tuned_crf_settings)
from pixseg.engine.inference import Applied, InferenceConfig, prediction_settings, settings_title
from pixseg.engine.train import load_trained_model, resolve_device
from pixseg.io import cached_json, write_text
from pixseg.models import MODELS, create_model, model_options

BUDGETS = {"quick": "zoo_quick", "full": "zoo_full"}
# The quick budget's models: every channel count scaled down so a dozen train in an hour on two
# cores, the lightest backbone each head is defined on, BatchNorm in the VGG nets (trained from
# scratch without it they sit at all-background for hundreds of steps), and compact padding for the
# FCNs (the classic pad of 100 costs 6x the FLOPs on small images). SegNet and DeconvNet get a
# quarter of their channels, not an eighth: their decoders see only the stride-32 features and the
# pooling indices, and at an eighth (8 channels before the classifier) they learned to find the
# objects but not to tell the classes apart, so every pixel stayed background.
QUICK_OPTIONS = {
    "fcn32s": {"width": 0.125, "padding": "compact", "batch_norm": True},
    "fcn16s": {"width": 0.125, "padding": "compact", "batch_norm": True},
    "fcn8s": {"width": 0.125, "padding": "compact", "batch_norm": True},
    "unet": {"width": 0.125},
    "segnet": {"width": 0.25},
    "deconvnet": {"width": 0.25},
    "deeplab_v1": {"backbone": "vgg16_bn", "width": 0.125},
    "deeplab_v2": {"backbone": "resnet18", "width": 0.25},
    "deeplab_v3": {"backbone": "resnet18", "width": 0.25},
    "deeplab_v3plus": {"backbone": "resnet18", "width": 0.25},
    "pspnet": {"backbone": "resnet18", "width": 0.25},
    "dilation": {"backbone": "vgg16_bn", "width": 0.125, "context": "basic"},
}
COST_SIZE = (512, 512)
# Architectures trained in two stages, as their reference trains them: first the network without
# its last part, then the whole network starting from it, each stage for half the budget's
# iterations. Yu & Koltun add the identity-initialised context module to a trained front end:
# trained jointly from scratch, its ReLUs pass only positive class scores, so a class the net
# first scores below zero gets no gradient through them, and the net stayed at all-background
# longer than its front end alone.
FIRST_STAGES = {"dilation": {"context": "none"}}


def model_title(name: str) -> str:
    return MODEL_TITLES.get(name, name)

MODES = ("none", "dense")
COLUMNS = ["Model", "mIoU", "mIoU+CRF", "fg recall", "recall+CRF"]
COST_COLUMNS = ["Model", "params (M)", "GFLOPs", "CPU ms", "ms + CRF"]


def model_spec(name: str, budget: str) -> dict:
    """The model section a budget trains `name` with."""
    if budget == "full":
        return {"name": name}
    # An architecture without quick settings (added to MODELS later) is narrowed by its width alone.
    default = {"width": 0.125} if "width" in model_options(name) else {}
    return {"name": name, **QUICK_OPTIONS.get(name, default)}


def run_zoo(out: str | Path, data: str | Path | None = None, models=None, budget: str = "quick",
            device: str = "auto", workers: int = 1, overrides=(), progress: bool = True,
            cost_size=COST_SIZE) -> dict:
    """Train, evaluate and cost every model of `models` (all of MODELS by default) into `out`;
    returns {"accuracy": table, "cost": table, "runs": metrics}. Costs are measured on cost_size
    (height, width) images."""
    out = Path(out)
    models = list(MODELS if models is None else models)
    check_study(models, MODELS, budget, BUDGETS)
    stages = Stages(5)

    stages.begin("data")
    root, base, val = study_data(out, data, BUDGETS[budget], overrides)

    stages.begin(f"training {len(models)} models ({budget} budget)")

    def config(spec, *extra):
        return load_config(BUDGETS[budget], [f"data.root={root}", f"model={json.dumps(spec)}", f"device={device}",
                                             *overrides, *extra])

    jobs, later = {}, {}
    for name in models:
        spec = model_spec(name, budget)
        if name in FIRST_STAGES:
            half = stage_length(config(spec), 0.5)
            jobs[f"{name}-first-stage"] = (config({**spec, **FIRST_STAGES[name]}, half),
                                           out / "models" / f"{name}-first-stage")
            later[name] = (spec, half)
        else:
            jobs[name] = (config(spec), out / "models" / name)
    parallel = workers if resolve_device(device).type == "cpu" else 1
    checkpoints = train_all(jobs, parallel, progress)
    if later:
        print(f"{', '.join(later)}: the whole network, starting from its trained first stage", flush=True)
        later = {name: (config(spec, half, f"model.init={checkpoints[f'{name}-first-stage']}"), out / "models" / name)
                 for name, (spec, half) in later.items()}
        checkpoints.update(train_all(later, parallel, progress))
        jobs.update(later)
    torch_device = resolve_device(device)

    stages.begin("choosing CRF parameters on held-out training images (never val)")
    crf_settings = tuned_crf_settings(out, checkpoints[models[0]], torch_device, TUNE_TRIALS[budget], progress,
                                      base.inference)

    cost_title = f"Cost at {cost_size[0]} x {cost_size[1]}, {settings_title(base.inference)}"
    stages.begin(f"evaluating every model without and with the CRF; {cost_title.lower()}")
    runs, costs = {}, {}
    began = time.perf_counter()
    for done, name in enumerate(models):
        if done:
            left = (time.perf_counter() - began) / done * (len(models) - done) / 60
            print(f"model {done + 1}/{len(models)}: {name}, about {left:.1f} min left", flush=True)
        for mode in MODES:
            runs[f"{name}-{mode}"] = evaluation(out / "results" / f"{name}-{mode}.json", checkpoints[name], val,
                                                torch_device, mode, crf_settings, out / "pos_cache", progress,
                                                inference=base.inference)
        costs[name] = model_cost(out / "results" / f"{name}-cost.json", checkpoints[name], cost_size,
                                 base.inference)
    crf_ms = crf_cost(out / "results" / "crf-cost.json", crf_settings, val.num_classes, cost_size)

    stages.begin("tables, figures and report")
    tables = {"accuracy": accuracy_table(models, runs), "cost": cost_table(models, costs, crf_ms)}
    markdown = []
    for key, title in (("accuracy", "Accuracy (%) on val"), ("cost", cost_title)):
        write_text(out / f"zoo_{key}.csv", table_csv(tables[key]))
        markdown.append(f"### {title}\n\n{table_markdown(tables[key])}")
    write_text(out / "zoo_tables.md", "\n".join(markdown))
    chart = plot_per_class(out / "per_class_iou.png", models, runs, val.classes)
    report = render_zoo_report(out / "report.html", tables, chart, crf_settings, f"{root} ({val.name})", budget,
                               {name: jobs[name][0].model for name in models}, crf_ms, cost_title, overrides)
    write_text(out / "metrics.json", json.dumps({"tables": tables, "runs": runs, "costs": costs,
                                                 "crf": crf_settings, "crf_ms": crf_ms}, indent=2))
    print(format_table(tables["accuracy"], "Accuracy (%) on val"))
    print(format_table(tables["cost"], cost_title))
    print(f"\nreport: {report}")
    return {**tables, "runs": runs}


def model_cost(path: Path, checkpoint: Path, size, inference: InferenceConfig) -> dict:
    """Parameters, GFLOPs and CPU ms per `size` image of a trained model applied as `inference`
    says (sliding windows and scales multiply the work), measured once per setting."""
    def measure():
        import torch

        from pixseg.models.cost import forward_gflops, forward_ms, parameter_count

        model, config = load_trained_model(checkpoint, "cpu")
        options = {key: value for key, value in config.model.items() if key not in ("name", "init", "pretrained")}

        def build():
            return Applied(create_model(config.model["name"], config.data.num_classes, **options), inference)

        return {"params": parameter_count(model), "gflops": forward_gflops(build, size),
                "cpu_ms": forward_ms(Applied(model, inference), size), "threads": torch.get_num_threads()}

    return cached_json(path, {"size": list(size), "inference": prediction_settings(inference)}, measure)


def crf_cost(path: Path, crf_settings: dict, num_classes: int, size) -> float:
    """CPU ms of the dense CRF on one `size` image (random colours, smooth random probabilities)."""
    if not path.is_file():
        from pixseg.crf import dense_crf

        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        logits = rng.normal(size=(num_classes, -(-size[0] // 8), -(-size[1] // 8))).repeat(8, 1).repeat(8, 2)
        logits = logits[:, : size[0], : size[1]]
        probs = np.exp(logits - logits.max(0))
        probs = (probs / probs.sum(0)).astype(np.float32)
        dense_crf(image, probs, **crf_settings)  # untimed: compilation and allocation
        times = []
        for _ in range(3):
            started = time.perf_counter()
            dense_crf(image, probs, **crf_settings)
            times.append(time.perf_counter() - started)
        write_text(path, json.dumps({"ms": 1000 * float(np.median(times))}))
    return json.loads(path.read_text())["ms"]


def accuracy_table(models, runs) -> dict:
    rows = [[model_title(name), *[100 * runs[f"{name}-{mode}"][key] for key in ("miou", "fg_recall")
                                  for mode in MODES]] for name in models]
    return {"columns": COLUMNS, "rows": rows}


def cost_table(models, costs, crf_ms: float) -> dict:
    rows = [[model_title(name), costs[name]["params"] / 1e6, costs[name]["gflops"], costs[name]["cpu_ms"],
             costs[name]["cpu_ms"] + crf_ms] for name in models]
    return {"columns": COST_COLUMNS, "rows": rows}


def plot_per_class(path: Path, models, runs: dict, classes) -> Path:
    """Per-class IoU of every model without the CRF, one row per model, as a heat map."""
    from matplotlib.figure import Figure  # a figure of its own: pyplot's global backend is left alone

    from pixseg.io import atomic_path

    # Undefined IoUs (a class in neither labels nor predictions) are null in the JSON: drawn as 0.
    values = 100 * np.nan_to_num(np.array([runs[f"{name}-none"]["iou"] for name in models], dtype=float))
    figure = Figure(figsize=(max(8, 0.55 * len(classes) + 3), 0.45 * len(models) + 2))
    axis = figure.subplots()
    image = axis.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    axis.set_xticks(np.arange(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(np.arange(len(models)), [model_title(name) for name in models])
    for (row, column), value in np.ndenumerate(values):
        axis.text(column, row, f"{value:.0f}", ha="center", va="center", fontsize=7,
                  color="white" if value < 60 else "black")
    figure.colorbar(image, ax=axis, label="IoU (%)")
    axis.set_title("Per-class IoU on val (no CRF)")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path


def render_zoo_report(path: Path, tables: dict, chart: Path, crf: dict, data: str, budget: str, specs: dict,
                      crf_ms: float, cost_title: str, overrides=()) -> Path:
    import html

    from pixseg.report import image_html, table_html, write_page

    options = "".join(f"<li><b>{html.escape(model_title(name))}</b>: "
                      f"{html.escape(', '.join(f'{k}={v}' for k, v in spec.items() if k != 'name') or 'defaults')}"
                      "</li>" for name, spec in specs.items())
    sections = [
        "<h1>pixseg zoo: which architecture for this data?</h1>",
        f'<p class="meta">Data: {html.escape(data)} &middot; budget: {html.escape(budget)}'
        + (f" with {html.escape(' '.join(overrides))}" if overrides else "") + ' &middot; CRF (tuned on '
        f'held-out training images): appearance {html.escape(str(tuple(crf["appearance"])))}, smoothness '
        f'{html.escape(str(tuple(crf["smoothness"])))}, {crf["iterations"]} iterations</p>',
        "<h2>Accuracy (%) on val</h2>",
        "<p class='meta'>fg recall: object pixels labelled with their correct class / all object pixels.</p>",
        table_html(tables["accuracy"]),
        f"<h2>{html.escape(cost_title)}, as trained</h2>",
        f"<p class='meta'>GFLOPs count a multiply-add as two. CPU ms: median forward pass of one image on this "
        f"machine; + CRF adds the dense CRF's {crf_ms:.0f} ms. Lowest in bold.</p>",
        table_html(tables["cost"], best=min),
        "<h2>Per-class IoU</h2>", image_html(chart, "per-class IoU"),
        "<h2>Models as trained</h2>", f"<ul>{options}</ul>",
    ]
    return write_page(path, "pixseg zoo", sections)
