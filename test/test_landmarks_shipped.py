"""The shipped VS-Net model of 7-Scenes redkitchen (models/vsnet_redkitchen.pt): found by name, and it localizes
frames of the scene in the dataset's frame (frames it was trained on: it saw all 500 dev frames)."""
import numpy as np

from rapnet_loc.geometry import rotation_angle
from rapnet_loc.io.source import open_source
from rapnet_loc.landmarks import Scene, create_estimator
from rapnet_loc.landmarks.vsnet import load_model, model_path
from rapnet_loc.slam.run import localize_frames


def test_shipped_model_is_found_by_name(repo_root):
    path = model_path('vsnet_redkitchen')
    assert path == repo_root / 'models' / 'vsnet_redkitchen.pt'
    model = load_model(path)
    assert len(model.landmarks) > 1000 and model.image_width == 320


def test_shipped_model_localizes_redkitchen(shared_data):
    with open_source(shared_data / '7scenes-redkitchen-seq01-dev', '420:439') as source:
        estimator = create_estimator('vsnet', {'model': 'vsnet_redkitchen'}, Scene(source.camera))
        results = localize_frames(source, estimator)
        stamps, poses = source.ground_truth()
    truth = dict(zip(stamps.tolist(), poses))
    good = 0
    for res in results:
        if res.estimate is not None:
            T, ref = res.estimate.T_wc, truth[res.stamp_ns]
            good += (np.linalg.norm(T[:3, 3] - ref[:3, 3]) < 0.05
                     and np.degrees(rotation_angle(ref[:3, :3].T @ T[:3, :3])) < 5)
    assert good >= 10, f'{good} of {len(results)} frames within 5 cm / 5 deg'
