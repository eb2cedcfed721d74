"""pixseg: semantic segmentation with FCNs, the fused loss, a fast dense CRF and pixel objectness."""

__version__ = "0.1.0"
