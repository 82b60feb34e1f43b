"""Signed distance functions of the object shapes, evaluated on many objects at once.

Every function takes local coordinates ``(u, v)`` in units of the object's radius (the object is
centred at 0 and already rotated) and returns the signed distance to the outline in the same units:
negative inside, positive outside. Distances are exact near the outline, which is all anti-aliasing
needs (the coverage of a pixel is ``clip(0.5 - distance_in_pixels, 0, 1)``).
"""

from __future__ import annotations

import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon", "crescent", "heart", "diamond")


def _box(u, v, half_w: float, half_h: float):
    qx, qy = np.abs(u) - half_w, np.abs(v) - half_h
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _regular_polygon(u, v, sides: int, circumradius: float, first_normal: float):
    """Max over the edges' half-planes: exact inside and along edges, slightly rounded past corners."""
    apothem = circumradius * np.cos(np.pi / sides)
    d = None
    for k in range(sides):
        a = first_normal + 2 * np.pi * k / sides
        e = u * np.cos(a) + v * np.sin(a)
        d = e if d is None else np.maximum(d, e)
    return d - apothem


def circle(u, v):
    return np.hypot(u, v) - 1.0


def square(u, v):
    return _box(u, v, 0.82, 0.82)


def triangle(u, v):
    return _regular_polygon(u, v, 3, 1.15, -np.pi / 2)


def hexagon(u, v):
    return _regular_polygon(u, v, 6, 1.0, np.pi / 6)


def diamond(u, v):
    a, b = 0.62, 1.12  # half-diagonals (x, y): an elongated rhombus, distinct from a rotated square
    return (np.abs(u) * b + np.abs(v) * a - a * b) / np.hypot(a, b)


def star(u, v, points: int = 5, outer: float = 1.12, inner: float = 0.47):
    """Fold the plane into one half-spike, where the outline is a single straight edge."""
    sector = 2 * np.pi / points
    theta = np.mod(np.arctan2(v, u), sector)
    theta = np.minimum(theta, sector - theta)
    rho = np.hypot(u, v)
    qx, qy = rho * np.cos(theta), rho * np.sin(theta)
    bx, by = inner * np.cos(sector / 2), inner * np.sin(sector / 2)
    ex, ey = bx - outer, by  # edge direction tip -> inner vertex
    nx, ny = ey, -ex  # outward normal (points away from the centre)
    norm = np.hypot(nx, ny)
    if nx * (0 - outer) + ny * 0 > 0:
        nx, ny = -nx, -ny
    return (nx * (qx - outer) + ny * qy) / norm


def ring(u, v):
    return np.abs(np.hypot(u, v) - 0.78) - 0.24


def cross(u, v):
    return np.minimum(_box(u, v, 1.0, 0.32), _box(u, v, 0.32, 1.0))


def crescent(u, v):
    return np.maximum(np.hypot(u, v) - 1.0, -(np.hypot(u - 0.48, v) - 0.86))


def heart(u, v):
    """A square standing on a corner with two discs on its upper edges (y up)."""
    h, cy = 0.88, -0.16
    body = (np.abs(u) + np.abs(v - cy) - h) / np.sqrt(2.0)
    r = h / np.sqrt(2.0)  # half the edge length: the discs sit on the upper edges' midpoints
    lobes = np.minimum(np.hypot(u + h / 2, v - cy - h / 2), np.hypot(u - h / 2, v - cy - h / 2)) - r
    return np.minimum(body, lobes)


SDF = {name: globals()[name] for name in SHAPES}
