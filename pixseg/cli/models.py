"""`pixseg models`: the architectures and backbones by name, with parameter counts and options."""


def register(subparsers):
    parser = subparsers.add_parser("models", help="list the architectures and backbones",
                                   description="Architectures (model.name) and backbones (backbone=) "
                                               "with their parameter counts at the default options.")
    parser.add_argument("--classes", type=int, default=21, help="classes the counts assume (default 21)")
    parser.set_defaults(func=run)


def _options(options: dict) -> str:
    return " ".join(f"{key}={value!r}" for key, value in options.items())


def run(args):
    import torch

    from pixseg.models import MODELS, create_model, model_options
    from pixseg.models.backbones import BACKBONES, create_backbone, keyword_options

    if args.classes < 1:
        raise ValueError(f"--classes {args.classes}: expected an integer >= 1")
    print(f"architectures (model.name; parameters at the defaults, {args.classes} classes):")
    for name in MODELS:
        # On the meta device: shapes only, no memory and no random init for a 250M-weight model.
        with torch.device("meta"):
            count = sum(p.numel() for p in create_model(name, args.classes).parameters())
        print(f"  {name:<14}{count:>14,}  {_options(model_options(name))}")
    print("backbones (without the ImageNet classifier; channels of the stride 4, 8, 16, 32 maps):")
    for name in BACKBONES:
        with torch.device("meta"):
            backbone = create_backbone(name)
        count = sum(p.numel() for p in backbone.parameters())
        channels = "/".join(map(str, backbone.channels))
        print(f"  {name:<14}{count:>14,}  {channels:<20} {_options(keyword_options(BACKBONES[name]))}")
