"""Place recognition over all keyframes of a fixed map: bag-of-words relocalization candidates (ORB-SLAM2
``KeyFrameDatabase::DetectRelocalizationCandidates``, with a flat vocabulary trained on the map itself).

The vocabulary's ``n_words`` visual words are clustered from the descriptors of the map's keyframes: k-majority for
binary descriptors (each word is the bitwise majority of its cluster), k-means for float ones. A keyframe's
bag-of-words vector is the tf-idf weighted histogram of the words of its keypoints that observe map points, a query
frame's that of all its keypoints; both are L1-normalised, and the similarity is DBoW2's L1 score
``sum_w min(a_w, b_w)`` (equal to ``1 - |a - b|_1 / 2``). As in ORB-SLAM2, each keyframe's score is accumulated
with those of its best covisible keyframes, and each such group is represented by its best-scoring keyframe.

A ``KeyFrameDatabase`` is a ``rapnet_loc.slam.relocalization.CandidateFn`` for the map it was built from; it indexes
the map once, so it suits a map that no longer grows (localization mode).
"""
from __future__ import annotations

import numpy as np

from rapnet_loc.features.matching import pairwise_distances
from rapnet_loc.slam.frame import Frame
from rapnet_loc.slam.map import KeyFrame, Map

N_WORDS = 512
TRAIN_SAMPLES = 10_000
TRAIN_ITERATIONS = 5
COVISIBLE_GROUP = 10
ASSIGN_CHUNK = 2048


class Vocabulary:
    """Flat visual vocabulary.

    Args:
        descriptors: (S, B) training descriptors (uint8 packed bits for ``'hamming'``, float32 for ``'l2'``).
        distance: descriptor metric.
        n_words: words wanted (fewer when there are fewer distinct training descriptors).
        seed: seed of the sampling and initialisation.
    Attributes:
        words: (W, B) word descriptors.
    """

    def __init__(self, descriptors: np.ndarray, distance: str, n_words: int = N_WORDS, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.distance = distance
        if len(descriptors) > TRAIN_SAMPLES:
            descriptors = descriptors[rng.choice(len(descriptors), TRAIN_SAMPLES, replace=False)]
        unique = np.unique(descriptors, axis=0)
        self.words = unique[rng.choice(len(unique), min(n_words, len(unique)), replace=False)]
        for _ in range(TRAIN_ITERATIONS):
            self._update(descriptors, self.assign(descriptors))

    def assign(self, descriptors: np.ndarray) -> np.ndarray:
        """(N,) int64 nearest word of each of (N, B) descriptors."""
        out = np.zeros(len(descriptors), np.int64)
        for start in range(0, len(descriptors), ASSIGN_CHUNK):
            chunk = descriptors[start:start + ASSIGN_CHUNK]
            out[start:start + len(chunk)] = pairwise_distances(chunk, self.words, self.distance).argmin(axis=1)
        return out

    def _update(self, descriptors: np.ndarray, labels: np.ndarray) -> None:
        """Each word with members becomes their bitwise majority (``'hamming'``) or mean (``'l2'``)."""
        order = np.argsort(labels, kind='stable')
        members, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        if self.distance == 'hamming':
            sums = np.add.reduceat(np.unpackbits(descriptors[order], axis=1).astype(np.int32), starts, axis=0)
            self.words[members] = np.packbits(2 * sums > counts[:, None], axis=1)
        else:
            sums = np.add.reduceat(descriptors[order].astype(np.float64), starts, axis=0)
            self.words[members] = (sums / counts[:, None]).astype(self.words.dtype)


class KeyFrameDatabase:
    """Relocalization candidates of a fixed map by bag-of-words similarity (see the module doc).

    Args:
        slam_map: the map; its keyframes are indexed once, here.
        n_words: vocabulary size.
    """

    def __init__(self, slam_map: Map, n_words: int = N_WORDS):
        self.map = slam_map
        self.kf_ids = list(slam_map.keyframes)
        observed = [kf.point_ids >= 0 for kf in slam_map.keyframes.values()]
        descriptors = [kf.frame.features.descriptors[m] for kf, m in zip(slam_map.keyframes.values(), observed)]
        distance = next(iter(slam_map.keyframes.values())).frame.features.distance
        self.vocabulary = Vocabulary(np.concatenate(descriptors), distance, n_words)
        n = len(self.vocabulary.words)
        counts = np.stack([np.bincount(self.vocabulary.assign(d), minlength=n) for d in descriptors]).astype(float)
        self.idf = np.log(len(self.kf_ids) / np.maximum((counts > 0).sum(axis=0), 1))
        self.vectors = self._normalise(counts * self.idf)
        self.row = {k: i for i, k in enumerate(self.kf_ids)}

    @staticmethod
    def _normalise(v: np.ndarray) -> np.ndarray:
        return v / np.maximum(v.sum(axis=-1, keepdims=True), 1e-12)

    def scores(self, frame: Frame) -> np.ndarray:
        """(K,) L1 similarity of ``frame`` to each keyframe (order of ``kf_ids``)."""
        words = self.vocabulary.assign(frame.features.descriptors)
        query = self._normalise(np.bincount(words, minlength=len(self.idf)) * self.idf)
        return np.minimum(self.vectors, query).sum(axis=1)

    def __call__(self, slam_map: Map, frame: Frame, n: int) -> list[KeyFrame]:
        """Up to ``n`` keyframes similar to ``frame``: first the best-scoring keyframe of each covisibility group
        (a keyframe and its ``COVISIBLE_GROUP`` best covisible ones), by the group's summed score; then the others
        by their own score."""
        if len(frame) == 0:
            return []
        score = self.scores(frame)
        best: dict[int, float] = {}
        for k, s in zip(self.kf_ids, score.tolist()):
            if s <= 0.0:
                continue
            group = [k, *self.map.covisible(k, COVISIBLE_GROUP)]
            group_scores = score[[self.row[g] for g in group]]
            leader = group[int(np.argmax(group_scores))]
            best[leader] = max(best.get(leader, 0.0), float(group_scores.sum()))
        leaders = sorted(best, key=lambda k: -best[k])
        others = [self.kf_ids[i] for i in np.argsort(-score, kind='stable') if self.kf_ids[i] not in best]
        return [self.map.keyframes[k] for k in (leaders + others)[:n]]
