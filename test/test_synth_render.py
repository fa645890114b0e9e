"""Unit behaviour of the synthetic renderer: camera size rule, exact depth, clipping, face orientation, lighting,
textures."""
from __future__ import annotations

import numpy as np
import pytest

from rapnet_loc.errors import ConfigError
from rapnet_loc.synth.camera import camera_for_size
from rapnet_loc.synth.render import NEAR_M, Renderer, bake_light_maps, clip_polygon
from rapnet_loc.synth.textures import TEXTURE_NAMES, TextureBank
from rapnet_loc.synth.world import Part, QuadSet, Room, part_quads, room_quads, transform_quads, yaw_matrix

TEXTURES = TextureBank()
OPTICAL = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1.0]])   # x fwd, z up -> optical


def test_native_size_is_the_openloris_d400_colour_camera():
    cam = camera_for_size(848, 480)
    assert (cam.width, cam.height, cam.frame_id) == (848, 480, 'd400_color')
    assert np.allclose([cam.fx, cam.fy, cam.cx, cam.cy], [611.451, 611.4857, 433.204, 249.473])


@pytest.mark.parametrize('width, height, scale, crop_x, crop_y', [
    (640, 480, 1.0, 104.0, 0.0), (424, 240, 0.5, 0.0, 0.0), (320, 240, 0.5, 52.0, 0.0),
    (1696, 960, 2.0, 0.0, 0.0), (848, 600, 1.25, 106.0, 0.0)])
def test_smaller_sizes_scale_uniformly_and_crop_the_centre(width, height, scale, crop_x, crop_y):
    cam = camera_for_size(width, height)
    assert np.isclose(cam.fx, 611.451 * scale) and np.isclose(cam.fy, 611.4857 * scale)
    assert np.isclose(cam.cx, scale * (433.204 + 0.5) - 0.5 - crop_x)
    assert np.isclose(cam.cy, scale * (249.473 + 0.5) - 0.5 - crop_y)


@pytest.mark.parametrize('width, height', [(0, 480), (640, -1), (640.0, 480), (True, 480), (10_000, 480)])
def test_bad_sizes_are_config_errors(width, height):
    with pytest.raises(ConfigError, match='width|height'):
        camera_for_size(width, height)


def test_depth_is_the_exact_z_of_a_slanted_plane():
    cam = camera_for_size(320, 240)
    renderer = Renderer(cam, TEXTURES)
    # A 6 x 4 m wall 3 m ahead, turned 30 degrees, seen from the origin.
    wall = Part((0.0, 0.0, 0.0), (0.02, 6.0, 4.0), 'brick', tile_m=1.0)
    quads = transform_quads(part_quads(TEXTURES, wall, 7), yaw_matrix(3.0, 0.0, np.deg2rad(210.0), 1.0))
    front = quads.normal[:, 0] < -0.5
    quads = QuadSet(*(getattr(quads, f)[front] for f in ('origin', 'edge_u', 'edge_v', 'texture', 'repeats', 'label')))
    T_world_cam = yaw_matrix(0.0, 0.0, 0.0, 1.0) @ OPTICAL
    frame = renderer.render(quads, bake_light_maps(quads, np.zeros((0, 3)), np.zeros(0), 1.0), T_world_cam)
    assert np.all(frame.label == 7) and np.all(frame.quad == 0)
    # Analytic: ray (camera frame) r = K^-1 [u, v, 1]; plane n . X = d -> z = d / (n . r).
    T_cam_world = np.linalg.inv(T_world_cam)
    n = T_cam_world[:3, :3] @ quads.normal[0]
    d = n @ (T_cam_world[:3, :3] @ quads.origin[0] + T_cam_world[:3, 3])
    v, u = np.mgrid[0:cam.height, 0:cam.width]
    rays = np.linalg.inv(cam.K) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    expected = (d / (n @ rays)).reshape(cam.height, cam.width)
    assert np.max(np.abs(frame.depth - expected) / expected) < 1e-5
    assert np.allclose(frame.irradiance, 1.0)            # ambient only


def test_near_plane_clipping():
    square = np.array([[-1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [1.0, 1.0, 2.0], [-1.0, 1.0, 2.0]])
    near = np.array([[0.0, 0.0, 1.0, -NEAR_M]])
    clipped = clip_polygon(square, near)
    assert len(clipped) == 4 and clipped[:, 2].min() >= NEAR_M - 1e-12
    assert len(clip_polygon(square - [0, 0, 5.0], near)) == 0


def test_room_faces_inward_and_boxes_outward():
    room = Room(5.0, 4.0, 2.5, ('tiles', 1.0), ('ceiling', 1.0), (('plaster', 1.0),) * 4)
    quads = room_quads(TEXTURES, room, (1, 2, 3, 4, 5, 6))
    centres = quads.origin + (quads.edge_u + quads.edge_v) / 2
    assert np.all(np.einsum('ij,ij->i', quads.normal, np.array([2.5, 2.0, 1.25]) - centres) > 0)
    box = part_quads(TEXTURES, Part((0.0, 0.0, 1.0), (1.0, 2.0, 0.5), 'wood'), 9)
    centres = box.origin + (box.edge_u + box.edge_v) / 2
    assert len(box) == 6
    assert np.all(np.einsum('ij,ij->i', box.normal, centres - [0.0, 0.0, 1.0]) > 0)
    on_floor = part_quads(TEXTURES, Part((0.0, 0.0, 0.25), (1.0, 1.0, 0.5), 'wood'), 9)
    assert len(on_floor) == 5                            # no bottom face on the floor


def test_inside_of_a_room_is_fully_covered_from_any_view():
    room = Room(5.0, 4.0, 2.5, ('tiles', 1.0), ('ceiling', 1.0), (('plaster', 1.0),) * 4)
    quads = room_quads(TEXTURES, room, (1, 2, 3, 4, 5, 6))
    maps = bake_light_maps(quads, np.array([[2.5, 2.0, 2.3]]), np.ones(1), 0.3)
    renderer = Renderer(camera_for_size(160, 120), TEXTURES)
    for yaw in np.linspace(0, 2 * np.pi, 7):
        frame = renderer.render(quads, maps, yaw_matrix(0.6, 0.7, yaw, 1.3) @ OPTICAL)
        assert np.all(frame.quad >= 0) and np.all(frame.depth > 0)


def test_light_maps_follow_distance_and_facing():
    floor = room_quads(TEXTURES, Room(4.0, 4.0, 2.5, ('tiles', 1.0), ('ceiling', 1.0), (('plaster', 1.0),) * 4),
                       (1, 2, 3, 4, 5, 6))
    light = np.array([[1.0, 1.0, 2.3]])
    maps = bake_light_maps(floor, light, np.ones(1), 0.25)
    floor_map = maps[0]
    assert floor_map.max() > floor_map.min() + 0.1       # brighter under the lamp
    assert np.all(bake_light_maps(floor, light, np.zeros(1), 0.25)[0] == np.float32(0.25))   # light off


def test_texture_library_is_complete_and_deterministic():
    fresh = TextureBank()
    for name in TEXTURE_NAMES:
        tex = TEXTURES.get(name)
        assert tex.levels[0].dtype == np.uint8 and tex.levels[0].ndim == 3 and tex.levels[0].shape[2] == 3
        assert all(b.shape[0] <= a.shape[0] for a, b in zip(tex.levels, tex.levels[1:]))
    for name in ('tiles', 'carpet', 'products', 'door_2', 'brick'):
        assert np.array_equal(fresh.get(name).levels[0], TEXTURES.get(name).levels[0])
    with pytest.raises(KeyError):
        TEXTURES.index('marble')
