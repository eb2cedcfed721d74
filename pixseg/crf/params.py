"""Named dense-CRF parameter settings (docs/method/crf.md) and the default one.

Each preset is a dict of `dense_crf` keyword arguments: appearance = (w1, theta_a, theta_b) and
smoothness = (w2, theta_g), positions in pixels and colours in 0..255 units.

The default is DeepLab v2's setting. With the probabilities of a modern VOC-trained network, the
reference implementation's README setting lowered VOC val mIoU by about 4 points (and foreground
recall by 5): its wide colour bandwidth (13) and heavy appearance weight (10) let large background
regions swallow objects. DeepLab v2's narrow kernels (theta_b = 3, theta_g = 1) only clean up
boundaries and raised mIoU by about 0.8. Tune on held-out training images (`pixseg tune-crf`),
never on the split you report.
"""

CRF_PRESETS = {
    "reference": {"appearance": (10.0, 80.0, 13.0), "smoothness": (3.0, 3.0)},
    "deeplab_v1": {"appearance": (4.0, 121.0, 5.0), "smoothness": (3.0, 3.0)},
    "deeplab_v2": {"appearance": (4.0, 67.0, 3.0), "smoothness": (3.0, 1.0)},
}
DEFAULT_PRESET = "deeplab_v2"
DEFAULT_APPEARANCE = CRF_PRESETS[DEFAULT_PRESET]["appearance"]
DEFAULT_SMOOTHNESS = CRF_PRESETS[DEFAULT_PRESET]["smoothness"]
DEFAULT_ITERATIONS = 10

# The POS-CRF's weight on sqrt(pos / max(pos)) (pixseg.crf.pos). On real photographs, weights chosen
# by mIoU on images other than those scored spread over 0.75 to 1.5 (one fold each picked 0.75, 1 and
# 1.5); 1 is their middle and the paper's. Larger weights trade mIoU for foreground recall
# (docs/method/objectness.md).
DEFAULT_POS_SCALE = 1.0
