"""``KeyFrameDatabase`` (ORB-SLAM2's name): a place recognizer (``rapnet_loc.vpr``) kept in step with a map, and
the relocalization candidates it gives.

The front end calls ``sync`` after each frame that created a keyframe: new keyframes are described (their features,
the keypoints observing map points, and the colour image where the recognizer needs it) and indexed, culled ones
are forgotten. As a relocalization candidate function (``rapnet_loc.slam.relocalization.CandidateFn``) it ranks
the keyframes for the lost frame with the recognizer, then groups them as ORB-SLAM2's
``DetectRelocalizationCandidates`` does: each ranked keyframe's score is accumulated with those of its best
covisible keyframes that were ranked too, each such group is represented by its best-scoring keyframe, and the
groups come first by summed score, then the remaining ranked keyframes by their own score.
"""
from __future__ import annotations

import numpy as np

from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.map import KeyFrame, Map
from rapnet_loc.vpr.base import PlaceRecognizer, Ranking, View

COVISIBLE_GROUP = 10


def keyframe_view(kf: KeyFrame) -> View:
    """What a recognizer describes of keyframe ``kf``: its features, observed keypoints and (while it is kept, see
    ``Frame.image``) its image."""
    return View(kf.frame.features, kf.frame.image, kf.point_ids >= 0)


class KeyFrameDatabase:
    """A place recognizer indexing the keyframes of ``slam_map``.

    Args:
        recognizer: the recognizer; keyframes of the map that it does not hold yet are added by ``sync``.
        slam_map: the map.
    Attributes:
        last_query: the last frame given for candidates and the recognizer's ranking for it (None before the
            first, or when that frame had no keypoints to query with).
    """

    def __init__(self, recognizer: PlaceRecognizer, slam_map: Map):
        self.recognizer = recognizer
        self.map = slam_map
        self.last_query: tuple[Frame, Ranking] | None = None

    def sync(self) -> None:
        """Index the map's new keyframes and forget the culled ones; the images of the new keyframes are dropped
        once described."""
        held = set(self.recognizer.ids)
        for kf_id in held - set(self.map.keyframes):
            self.recognizer.remove(kf_id)
        for kf_id, kf in self.map.keyframes.items():
            if kf_id not in held:
                self.recognizer.add(kf_id, self.recognizer.describe_checked(keyframe_view(kf)))
                kf.frame.image = None

    def __call__(self, slam_map: Map, frame: Frame, n: int) -> list[KeyFrame]:
        """Up to ``n`` relocalization candidates for ``frame`` (see the module doc)."""
        self.last_query = None
        if len(frame) == 0 or len(self.recognizer) == 0:
            return []
        if frame.place_descriptor is None:
            frame.place_descriptor = self.recognizer.describe_checked(View(frame.features, frame.image))
        ranking = self.recognizer.query(frame.place_descriptor)
        self.last_query = (frame, ranking)
        score = dict(zip(ranking.ids.tolist(), ranking.scores.tolist()))
        best: dict[int, float] = {}
        for k, s in score.items():
            if s <= 0.0 or k not in slam_map.keyframes:
                continue
            group = [k, *(g for g in slam_map.covisible(k, COVISIBLE_GROUP) if g in score)]
            group_scores = np.array([score[g] for g in group])
            leader = group[int(np.argmax(group_scores))]
            best[leader] = max(best.get(leader, 0.0), float(group_scores.sum()))
        leaders = sorted(best, key=lambda k: -best[k])
        others = [k for k in score if k not in best and k in slam_map.keyframes]
        return [slam_map.keyframes[k] for k in (leaders + others)[:n]]
