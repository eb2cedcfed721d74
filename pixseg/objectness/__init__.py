"""Geodesic object proposals and pixel objectness (POS), with the centred-Gaussian baseline."""

from pixseg.objectness.boundaries import boundary_map
from pixseg.objectness.pos import center_prior, objectness_from_proposals, pixel_objectness
from pixseg.objectness.proposals import Proposals, propose

__all__ = ["Proposals", "boundary_map", "center_prior", "objectness_from_proposals", "pixel_objectness",
           "propose"]
