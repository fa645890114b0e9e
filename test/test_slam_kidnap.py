"""Kidnapped-robot trials (rapnet_loc.slam.kidnap): a synthetic home scene in two sequences under changing light,
sequence 1 mapped, sequence 2 (which starts on sequence 1's path) localized on the map with no starting pose."""
import pytest

from rapnet_loc.slam.config import SlamConfig
from rapnet_loc.slam.kidnap import kidnap_trial
from rapnet_loc.synth import Challenges, generate

LIGHT_ONLY = Challenges(people=0, repetitive=False, featureless=False, illumination=True, moved_furniture=False,
                        motion_blur=False)
FRAMES, FPS = 240, 30
SMALL_PATCH = {'clusters': 16, 'num_pcs': 64, 'kmeans_samples': 5000, 'wpca_samples': 2000}


@pytest.fixture(scope='module')
def home(tmp_path_factory):
    data = tmp_path_factory.mktemp('kidnap') / 'data'
    return generate(data, scene='home', sequences=2, frames=FRAMES, width=320, height=240, seed=3,
                    challenges=LIGHT_ONLY, compression='none', progress=False)


@pytest.mark.parametrize('recognizer, conf, kidnap_at_s', [('bow', {}, 1.0), ('patchnetvlad', SMALL_PATCH, 0.0)])
def test_kidnapped_robot_relocalizes_on_the_map(home, tmp_path, recognizer, conf, kidnap_at_s):
    config = SlamConfig.from_dict({'place_recognition': {'name': recognizer, 'conf': conf}})
    report = kidnap_trial(home.bags[0], home.bags[1], home.out_dir, config, tmp_path, kidnap_at_s)
    assert report.mapping_correct_rate > 0.9
    assert report.frames_to_correct is not None and report.frames_to_correct <= 10
    assert report.reloc_time_s < kidnap_at_s + 1.0 and report.relocalized >= 1
    assert report.correct_rate > 0.3
    for name in ('map.map', 'result_openloris.txt', 'map/status.csv'):
        assert (tmp_path / name).is_file()
    rows = (tmp_path / 'kidnapped' / 'status.csv').read_text().splitlines()[1:]
    assert len(rows) == FRAMES - round(kidnap_at_s * FPS), 'the kidnapped replay starts at kidnap_at_s'
