"""Z-buffer renderer of textured planar quads with exact per-pixel depth and deferred point-light shading.

For every quad facing the camera and inside the view frustum:

1. its corners are clipped (Sutherland-Hodgman, in camera coordinates) against the near plane and the four
   image-border planes, then projected;
2. inverse depth over the quad's bounding box is computed analytically: for the plane ``n . X = d`` (camera
   frame) a pixel ``p = [u, v, 1]`` sees depth ``z = d / (n . K^-1 p)``, so ``1 / z`` is affine in (u, v);
3. pixels inside the polygon (``cv2.fillConvexPoly``) and nearer than the z-buffer pass; only the bounding box
   of the passing pixels is textured, with ``cv2.warpPerspective`` of the right mip level through the
   image -> texture homography (``BORDER_WRAP`` repeats tiled textures).

Quads are drawn nearest first, so hidden quads cost no texture warp. Lighting is baked per quad into small light
maps (``bake_light_maps``: ambient plus Lambert light from point lights, evaluated on a grid over the quad) that
are warped like the textures, so each pixel gets the irradiance of its surface point at the cost of one more warp.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rapnet_loc.geometry import invert
from rapnet_loc.io.types import CameraInfo
from rapnet_loc.synth.textures import TextureBank
from rapnet_loc.synth.world import QuadSet

NEAR_M = 0.05
LIGHT_RANGE_M = 1.5
LIGHT_MAP_TEXEL_M = 0.1
LIGHT_MAP_MAX_SIDE = 48
LIGHT_SUBSAMPLE = 4
UNIFORM_LIGHT = 0.01           # light maps varying less than this (relative) become one value
_SHIFT = 4                      # fixed-point bits of the polygon vertices given to fillConvexPoly


@dataclass
class Frame:
    """One rendered view.

    Attributes:
        albedo: (H, W, 3) uint8 texture colour of the surface seen at each pixel (black where nothing is seen).
        irradiance: (H, W) float32 light falling on that surface (ambient + point lights); the shaded image is
            ``albedo * irradiance``.
        depth: (H, W) float32 z-depth in metres of the surface seen at each pixel centre; 0 where nothing is seen.
        label: (H, W) uint8 ``object id | DYNAMIC flag`` (see ``rapnet_loc.synth.world``); 0 where nothing is seen.
        quad: (H, W) int32 index of the quad seen at each pixel in the rendered ``QuadSet``; -1 where none.
    """

    albedo: np.ndarray
    irradiance: np.ndarray
    depth: np.ndarray
    label: np.ndarray
    quad: np.ndarray


def clip_polygon(poly: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Clip a convex polygon (M, 3) to the half-spaces ``planes[:, :3] . X + planes[:, 3] >= 0`` (P, 4) -> (M', 3)."""
    for plane in planes:
        if len(poly) == 0:
            break
        dist = poly @ plane[:3] + plane[3]
        inside = dist >= 0.0
        if inside.all():
            continue
        out = []
        for i in range(len(poly)):
            j = (i + 1) % len(poly)
            if inside[i]:
                out.append(poly[i])
            if inside[i] != inside[j]:
                t = dist[i] / (dist[i] - dist[j])
                out.append(poly[i] + t * (poly[j] - poly[i]))
        poly = np.array(out).reshape(-1, 3)
    return poly


def bake_light_maps(quads: QuadSet, lights: np.ndarray, intensities: np.ndarray, ambient: float) -> list[np.ndarray]:
    """Irradiance over each quad: ``ambient + sum_l 2 I_l cos(theta_l) / (1 + (d_l / LIGHT_RANGE_M)^2)``.

    ``theta_l`` is the angle between the quad normal and the direction to light ``l`` at distance ``d_l``.

    Args:
        quads: N quads.
        lights: (L, 3) world positions of point lights; intensities: (L,) their intensities (0 = off).
    Returns:
        N float32 maps of (rows, cols) texels, one texel about ``LIGHT_MAP_TEXEL_M`` (at most
        ``LIGHT_MAP_MAX_SIDE`` per side); texel (i, j) is centred at quad parameters ((j + 0.5) / cols,
        (i + 0.5) / rows) along (``edge_u``, ``edge_v``). Maps varying by less than ``UNIFORM_LIGHT`` are (1, 1).
    """
    lights = np.asarray(lights, float).reshape(-1, 3)
    on = np.asarray(intensities, float) > 0
    lights, power = lights[on], np.asarray(intensities, float)[on]
    normals = quads.normal
    sides = np.clip(np.ceil(np.stack([np.linalg.norm(quads.edge_u, axis=1), np.linalg.norm(quads.edge_v, axis=1)],
                                     axis=1) / LIGHT_MAP_TEXEL_M), 2, LIGHT_MAP_MAX_SIDE).astype(int)
    maps: list[np.ndarray] = [np.empty(0)] * len(quads)
    for cols, rows in np.unique(sides, axis=0):      # all quads of one map size at once
        idx = np.flatnonzero((sides[:, 0] == cols) & (sides[:, 1] == rows))
        s = (np.arange(cols) + 0.5) / cols
        t = (np.arange(rows) + 0.5) / rows
        points = (quads.origin[idx, None, None] + t[None, :, None, None] * quads.edge_v[idx, None, None]
                  + s[None, None, :, None] * quads.edge_u[idx, None, None])          # (Q, rows, cols, 3)
        d = lights[:, None, None, None, :] - points                                    # (L, Q, rows, cols, 3)
        dist2 = np.einsum('lqijk,lqijk->lqij', d, d)
        cos = np.maximum(np.einsum('lqijk,qk->lqij', d, normals[idx]), 0.0) / np.sqrt(dist2 + 1e-12)
        light = (2.0 * power[:, None, None, None] * cos / (1.0 + dist2 / LIGHT_RANGE_M ** 2)).sum(axis=0)
        for q, irradiance in zip(idx, (ambient + light).astype(np.float32)):
            flat = np.ptp(irradiance) <= UNIFORM_LIGHT * irradiance.mean()
            maps[q] = np.full((1, 1), irradiance.mean(), np.float32) if flat else irradiance
    return maps


class Renderer:
    """Renders ``QuadSet`` s seen by one pinhole camera.

    Args:
        camera: intrinsics and image size (no distortion).
        textures: bank holding the textures that quads refer to.
    """

    def __init__(self, camera: CameraInfo, textures: TextureBank):
        self.camera = camera
        self.textures = textures
        self.K = np.asarray(camera.K, dtype=np.float64)
        self.K_inv = np.linalg.inv(self.K)
        self.width, self.height = camera.width, camera.height
        fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
        w, h = self.width, self.height
        # Inside: a . X + b >= 0. Near plane, then u >= -1, u <= W, v >= -1, v <= H (one pixel of slack).
        self.planes = np.array([[0.0, 0.0, 1.0, -NEAR_M],
                                [fx, 0.0, cx + 1.0, 0.0], [-fx, 0.0, w - cx, 0.0],
                                [0.0, fy, cy + 1.0, 0.0], [0.0, -fy, h - cy, 0.0]])
        self.v_grid, self.u_grid = np.mgrid[0:h, 0:w].astype(np.float32)
        self.scratch = np.empty((h, w), np.int32)
        self.scratch_light = np.empty((h, w), np.float32)

    def render(self, quads: QuadSet, light_maps: list[np.ndarray], T_world_cam: np.ndarray) -> Frame:
        """Render ``quads`` lit by their ``light_maps`` (see ``bake_light_maps``) from the camera pose
        ``T_world_cam`` (4, 4) (optical frame: z forward, y down)."""
        T_cw = invert(T_world_cam)
        r, t = T_cw[:3, :3], T_cw[:3, 3]
        corners = quads.corners @ r.T + t                     # (N, 4, 3) camera frame
        normals = quads.normal @ r.T                           # (N, 3)
        offsets = np.einsum('ij,ij->i', normals, corners[:, 0])  # plane n . X = d
        sides = corners @ self.planes[:, :3].T + self.planes[:, 3]   # (N, 4, P)
        candidates = (offsets < -1e-9) & ~np.any(np.all(sides < 0.0, axis=1), axis=1)
        index = np.flatnonzero(candidates)
        index = index[np.argsort(corners[index, :, 2].min(axis=1), kind='stable')]
        inside = np.all(sides >= 0.0, axis=(1, 2))             # no clipping needed

        h, w = self.height, self.width
        frame = Frame(albedo=np.zeros((h, w, 3), np.uint8), irradiance=np.zeros((h, w), np.float32),
                      depth=np.zeros((h, w), np.float32), label=np.zeros((h, w), np.uint8),
                      quad=np.full((h, w), -1, np.int32))
        inv_depth = frame.depth          # holds 1 / z while drawing
        for i in index:
            self._draw(quads, light_maps, int(i), corners[i], normals[i], offsets[i], bool(inside[i]), frame)
        cv2.divide(1.0, inv_depth, dst=frame.depth)           # 0 where nothing was drawn
        frame.label = np.concatenate([[0], quads.label]).astype(np.uint8)[frame.quad + 1]
        return frame

    def _draw(self, quads: QuadSet, light_maps: list[np.ndarray], i: int, corners: np.ndarray, normal: np.ndarray,
              offset: float, inside: bool, frame: Frame) -> None:
        """Z-test and texture quad ``i`` (camera-frame ``corners`` (4, 3), plane ``normal . X = offset``, ``inside``
        the view frustum) into ``frame``, whose ``depth`` holds inverse depth while drawing."""
        poly = corners if inside else clip_polygon(corners, self.planes)
        if len(poly) < 3:
            return
        uv = (poly @ self.K.T)[:, :2] / poly[:, 2:3]
        x0, y0 = np.maximum(np.floor(uv.min(axis=0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(uv.max(axis=0)).astype(int) + 1, [self.width, self.height])
        if x1 <= x0 or y1 <= y0:
            return
        roi = (slice(y0, y1), slice(x0, x1))
        if 1.0 / poly[:, 2].min() < cv2.minMaxLoc(frame.depth[roi])[0]:
            return                                            # behind everything drawn in its bounding box
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round((uv - [x0, y0]) * (1 << _SHIFT)).astype(np.int32), 255,
                           lineType=cv2.LINE_8, shift=_SHIFT)
        g = (self.K_inv.T @ normal) / offset                 # 1 / z = g . [u, v, 1]
        inv_z = cv2.addWeighted(self.u_grid[roi], g[0], self.v_grid[roi], g[1], g[2])
        passed = cv2.bitwise_and(mask, cv2.compare(inv_z, frame.depth[roi], cv2.CMP_GT))
        if not cv2.countNonZero(passed):
            return
        bx, by, bw, bh = cv2.boundingRect(passed)
        sub = (slice(by, by + bh), slice(bx, bx + bw))
        ox, oy = x0 + bx, y0 + by
        out = (slice(oy, oy + bh), slice(ox, ox + bw))
        passed = passed[sub]
        st_from_window = np.linalg.inv(self.K @ np.column_stack([corners[1] - corners[0], corners[3] - corners[0],
                                                                 corners[0]])) @ \
            np.array([[1.0, 0, ox], [0, 1.0, oy], [0, 0, 1.0]])
        cv2.copyTo(self._texture(quads, i, st_from_window, bw, bh), passed, frame.albedo[out])
        light = light_maps[i]
        if light.size == 1:                                  # uniformly lit quad
            level = self.scratch_light[:bh, :bw]
            level.fill(light.flat[0])
            cv2.copyTo(level, passed, frame.irradiance[out])
        else:
            cv2.copyTo(self._light(light, st_from_window, bw, bh), passed, frame.irradiance[out])
        cv2.copyTo(inv_z[sub], passed, frame.depth[out])
        ids = self.scratch[:bh, :bw]
        ids.fill(i)
        cv2.copyTo(ids, passed, frame.quad[out])

    @staticmethod
    def _light(light_map: np.ndarray, st_from_window: np.ndarray, bw: int, bh: int) -> np.ndarray:
        """(bh, bw) float32 light map seen through an image window: warped at 1/``LIGHT_SUBSAMPLE`` resolution
        (irradiance is smooth over a quad) and resized up."""
        f = LIGHT_SUBSAMPLE
        sw, sh = -(-bw // f), -(-bh // f)
        small_to_window = np.array([[f, 0.0, (f - 1) / 2], [0.0, f, (f - 1) / 2], [0.0, 0.0, 1.0]])
        small = _warp(light_map, st_from_window @ small_to_window, (1.0, 1.0), sw, sh, cv2.BORDER_REPLICATE)
        return cv2.resize(small, (bw, bh), interpolation=cv2.INTER_LINEAR)

    def _texture(self, quads: QuadSet, i: int, st_from_window: np.ndarray, bw: int, bh: int) -> np.ndarray:
        """(bh, bw, 3) uint8 texture of quad ``i`` seen through an image window; ``st_from_window`` (3, 3) maps
        window pixels to the quad parameters (s, t) in [0, 1]^2 along (``edge_u``, ``edge_v``)."""
        tex = self.textures[int(quads.texture[i])]
        repeats = quads.repeats[i]
        tw, th = tex.size
        centre = st_from_window @ [bw / 2.0, bh / 2.0, 1.0]
        jac = (st_from_window[:2, :2] * centre[2] - np.outer(centre[:2], st_from_window[2, :2])) / centre[2] ** 2
        texels_per_pixel = np.sqrt(abs(np.linalg.det(jac)) * tw * repeats[0] * th * repeats[1])
        level = int(np.clip(np.floor(np.log2(max(texels_per_pixel, 1e-9))), 0, len(tex.levels) - 1))
        return _warp(tex.levels[level], st_from_window, repeats, bw, bh, cv2.BORDER_WRAP)


def _warp(image: np.ndarray, st_from_window: np.ndarray, repeats: tuple[float, float], bw: int, bh: int,
          border: int) -> np.ndarray:
    """``image`` stretched ``repeats`` times over the quad parameters (s, t) in [0, 1]^2, seen through a (bh, bw)
    window (``st_from_window`` (3, 3)); texel centres sit at half-integer multiples of the texel size."""
    h, w = image.shape[:2]
    tex_from_st = np.array([[w * repeats[0], 0.0, -0.5], [0.0, h * repeats[1], -0.5], [0.0, 0.0, 1.0]])
    return cv2.warpPerspective(image, tex_from_st @ st_from_window, (bw, bh),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border)
