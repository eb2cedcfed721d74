"""Shape families for the synthetic data: boolean masks computed on object-frame coordinate grids.

Every function takes local coordinates (u, v), float arrays (or scalars) where the shape spans about
[-1, 1] on both axes, v pointing down, and returns a boolean mask of the same shape.
"""

import numpy as np


def disc(u, v, x, y, r):
    return (u - x) ** 2 + (v - y) ** 2 <= r * r


def ellipse(u, v, x, y, rx, ry):
    return ((u - x) / rx) ** 2 + ((v - y) / ry) ** 2 <= 1.0


def ring(u, v, x, y, r_out, r_in):
    d2 = (u - x) ** 2 + (v - y) ** 2
    return (d2 <= r_out * r_out) & (d2 >= r_in * r_in)


def box(u, v, x0, y0, x1, y1):
    return (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)


def segment(u, v, x0, y0, x1, y1, width):
    """A capsule: points within width/2 of the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return (u - x0 - t * dx) ** 2 + (v - y0 - t * dy) ** 2 <= (width / 2) ** 2


def polygon(u, v, points):
    """A convex polygon, vertices in either winding order."""
    inside_left = inside_right = True
    points = list(points)
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
        side = (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0)
        inside_left = inside_left & (side >= 0)
        inside_right = inside_right & (side <= 0)
    return inside_left | inside_right


def star(u, v, points, r_out, r_in):
    """A star centred on the origin: `points` tips at radius r_out, notches at radius r_in."""
    angle = np.arctan2(v, u) * (points / (2 * np.pi))
    wave = np.abs(angle - np.round(angle)) * 2  # 0 at a tip, 1 halfway between tips
    return np.hypot(u, v) <= r_out + (r_in - r_out) * wave


# The 20 shape families, one per object class.

def cross(u, v):  # aeroplane: fuselage, swept wings, tail fin
    wings = (polygon(u, v, [(0.2, 0.0), (-0.2, -0.95), (-0.45, -0.95), (-0.2, 0.0)])
             | polygon(u, v, [(0.2, 0.0), (-0.2, 0.95), (-0.45, 0.95), (-0.2, 0.0)]))
    tail = polygon(u, v, [(-0.65, 0.0), (-0.9, -0.45), (-1.0, -0.45), (-0.95, 0.0)])
    return ellipse(u, v, 0.0, 0.0, 1.0, 0.16) | wings | tail


def bicycle(u, v):  # two thin wheels joined by a wire frame
    wheels = ring(u, v, -0.55, 0.4, 0.43, 0.31) | ring(u, v, 0.55, 0.4, 0.43, 0.31)
    frame = np.zeros_like(wheels)
    for x0, y0, x1, y1 in ((-0.55, 0.4, -0.1, -0.3), (-0.1, -0.3, 0.05, 0.4), (0.05, 0.4, -0.55, 0.4),
                           (-0.1, -0.3, 0.45, -0.3), (0.05, 0.4, 0.45, -0.3), (0.45, -0.3, 0.55, 0.4),
                           (0.45, -0.3, 0.35, -0.6), (0.2, -0.6, 0.5, -0.6), (-0.25, -0.4, 0.05, -0.4)):
        frame |= segment(u, v, x0, y0, x1, y1, 0.1)
    return wheels | frame


def triangle(u, v):  # bird: triangular body, round head
    return polygon(u, v, [(-1.0, 0.3), (0.55, -0.35), (0.55, 0.7)]) | disc(u, v, 0.65, -0.45, 0.27)


def boat(u, v):  # circular-segment hull, thin mast, triangular sail
    hull = disc(u, v, 0.0, -0.9, 1.55) & (v >= 0.3)
    sail = polygon(u, v, [(0.08, -0.85), (0.08, 0.2), (0.75, 0.2)])
    return hull | segment(u, v, 0.0, 0.35, 0.0, -0.95, 0.07) | sail


def bottle(u, v):  # tall rounded body, neck, cap
    body = segment(u, v, 0.0, 0.05, 0.0, 0.6, 0.75)
    return body | box(u, v, -0.14, -0.85, 0.14, 0.0) | box(u, v, -0.19, -0.98, 0.19, -0.8)


def square(u, v):  # bus: rounded rectangle
    return (box(u, v, -1.0, -0.5, 1.0, 0.5) | box(u, v, -0.85, -0.65, 0.85, 0.65)
            | disc(u, v, -0.85, -0.5, 0.15) | disc(u, v, 0.85, -0.5, 0.15)
            | disc(u, v, -0.85, 0.5, 0.15) | disc(u, v, 0.85, 0.5, 0.15))


def car(u, v):  # body, cabin, two wheels
    cabin = polygon(u, v, [(-0.6, 0.0), (-0.35, -0.5), (0.3, -0.5), (0.6, 0.0)])
    wheels = disc(u, v, -0.6, 0.45, 0.24) | disc(u, v, 0.6, 0.45, 0.24)
    return box(u, v, -1.0, -0.05, 1.0, 0.4) | cabin | wheels


def cat(u, v):  # round head with pointed ears
    ears = (polygon(u, v, [(-0.7, -0.1), (-0.6, -0.98), (-0.1, -0.55)])
            | polygon(u, v, [(0.7, -0.1), (0.6, -0.98), (0.1, -0.55)]))
    return disc(u, v, 0.0, 0.2, 0.75) | ears


def chair(u, v):  # L-shaped seat and back on thin legs
    seat = box(u, v, -0.6, 0.0, 0.55, 0.15) | box(u, v, 0.4, -0.95, 0.55, 0.15)
    legs = segment(u, v, -0.52, 0.1, -0.52, 0.95, 0.09) | segment(u, v, 0.47, 0.1, 0.47, 0.95, 0.09)
    return seat | legs


def cow(u, v):  # ellipse body on four legs, head
    legs = np.zeros(np.broadcast(u, v).shape, dtype=bool)
    for x in (-0.6, -0.38, 0.35, 0.57):
        legs |= segment(u, v, x, 0.0, x, 0.95, 0.11)
    return ellipse(u, v, 0.0, -0.1, 0.8, 0.38) | legs | ellipse(u, v, 0.82, -0.42, 0.2, 0.16)


def table(u, v):  # thin slab on two thin legs
    legs = segment(u, v, -0.85, -0.3, -0.85, 0.9, 0.08) | segment(u, v, 0.85, -0.3, 0.85, 0.9, 0.08)
    return box(u, v, -1.0, -0.48, 1.0, -0.3) | legs


def arrow(u, v):  # dog: shaft and head
    return box(u, v, -1.0, -0.2, 0.15, 0.2) | polygon(u, v, [(0.15, -0.65), (1.0, 0.0), (0.15, 0.65)])


def mug(u, v):  # horse: body with a ring handle
    handle = ring(u, v, 0.35, 0.0, 0.6, 0.38) & (u >= 0.35)
    return box(u, v, -0.65, -0.75, 0.38, 0.85) | handle


def annulus(u, v):  # motorbike: thick ring
    return ring(u, v, 0.0, 0.0, 0.97, 0.55)


def person(u, v):  # head, torso, thin arms and legs
    limbs = (segment(u, v, -0.2, -0.4, -0.6, 0.15, 0.11) | segment(u, v, 0.2, -0.4, 0.6, 0.15, 0.11)
             | segment(u, v, -0.1, 0.2, -0.32, 0.97, 0.13) | segment(u, v, 0.1, 0.2, 0.32, 0.97, 0.13))
    return disc(u, v, 0.0, -0.75, 0.22) | segment(u, v, 0.0, -0.38, 0.0, 0.15, 0.42) | limbs


def plant(u, v):  # star of leaves on a stem over a pot
    pot = polygon(u, v, [(-0.38, 0.4), (0.38, 0.4), (0.26, 0.98), (-0.26, 0.98)])
    return star(u, v + 0.3, 5, 0.68, 0.28) | segment(u, v, 0.0, -0.2, 0.0, 0.45, 0.07) | pot


def cloud(u, v):  # sheep: union of discs on two short legs
    body = np.zeros(np.broadcast(u, v).shape, dtype=bool)
    for x, y, r in ((-0.55, -0.05, 0.4), (0.0, -0.3, 0.45), (0.55, -0.05, 0.4), (-0.2, 0.2, 0.42),
                    (0.3, 0.2, 0.4)):
        body |= disc(u, v, x, y, r)
    legs = segment(u, v, -0.35, 0.4, -0.35, 0.95, 0.1) | segment(u, v, 0.35, 0.4, 0.35, 0.95, 0.1)
    return body | legs


def u_shape(u, v):  # sofa: seat between two arms
    return box(u, v, -1.0, 0.05, 1.0, 0.7) | box(u, v, -1.0, -0.55, -0.7, 0.7) | box(u, v, 0.7, -0.55, 1.0, 0.7)


def hexagon(u, v):  # train
    return polygon(u, v, [(np.cos(a), np.sin(a)) for a in np.arange(6) * np.pi / 3])


def frame(u, v):  # tvmonitor: hollow screen frame on a stand
    frame = box(u, v, -1.0, -0.9, 1.0, 0.45) & ~box(u, v, -0.78, -0.68, 0.78, 0.23)
    return frame | segment(u, v, 0.0, 0.45, 0.0, 0.82, 0.12) | box(u, v, -0.42, 0.8, 0.42, 0.95)
