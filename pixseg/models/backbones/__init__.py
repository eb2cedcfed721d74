"""ImageNet backbones with torchvision's parameter names, so torchvision checkpoints load into them."""

from pixseg.models.backbones.vgg import VGG16, load_torchvision_vgg16

__all__ = ["VGG16", "load_torchvision_vgg16"]
