"""Place recognition: which keyframes show the place a frame shows. One interface, implementations by name.

A ``PlaceRecognizer`` knows keyframes only by integer id. It turns a ``View`` (the features of an image, with the
image itself for recognizers that need it, and for a keyframe the keypoints that observe map points) into a place
descriptor (``describe``), indexes descriptors by keyframe id (``add``/``remove``, as the map grows and keyframes
are culled), ranks the indexed keyframes for a query descriptor (``query``), re-fits whatever it learns from the
keyframes it holds (``fit``: a vocabulary, clusters, a whitening) and saves its whole state as named arrays
(``state``/``load_state``, stored in map files by ``rapnet_loc.slam.map_io``). It knows nothing of the SLAM map:
``rapnet_loc.slam.keyframe_database`` keeps one in step with a map and turns its rankings into relocalization
candidates.

Adding a recognizer is one file ``rapnet_loc/vpr/<name>.py`` with a subclass decorated ``@register('<name>')``;
``GlobalDescriptorRecognizer`` does the indexing for recognizers whose descriptor is one vector per image, so those
only implement ``describe``. Configuration: ``place_recognition: {name: bow, conf: {...}}`` in the YAML of
``rapnet_loc.slam.config``, ``--place-recognition NAME`` on the command line, the ``place_recognition`` parameter of
``frontend_node``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rapnet_loc.errors import ConfigError, MapFormatError
from rapnet_loc.features.base import Features
from rapnet_loc.registry import Configurable, Registry

try:
    import faiss
except ImportError:     # optional: exhaustive search by numpy
    faiss = None


@dataclass
class View:
    """What a recognizer describes.

    Attributes:
        features: the image's N keypoints and descriptors.
        image: (H, W, 3) uint8 RGB, or None where it is not kept (keyframes of a loaded map, features received
            from another node).
        observed: (N,) bool, for a keyframe the keypoints that observe map points; None for a query frame.
    """

    features: Features
    image: np.ndarray | None = None
    observed: np.ndarray | None = None


@dataclass
class Ranking:
    """Keyframes ranked for one query, best first: ``ids`` (k,) int64 and ``scores`` (k,) float64 (larger is more
    similar; the scale is the recognizer's own)."""

    ids: np.ndarray
    scores: np.ndarray


class PlaceRecognizer(Configurable, ABC):
    """Indexes keyframes by place descriptor and ranks them for a query (see the module doc).

    Attributes:
        needs_image: whether ``describe`` needs ``View.image`` (then a map's keyframes can only be indexed while
            their images are at hand, i.e. when the map is built).
    """

    kind: ClassVar[str] = 'place recognizer'
    needs_image: ClassVar[bool] = False

    @abstractmethod
    def describe(self, view: View) -> np.ndarray:
        """The place descriptor of ``view`` (an array in the recognizer's own layout)."""

    @abstractmethod
    def add(self, kf_id: int, descriptor: np.ndarray) -> None:
        """Index keyframe ``kf_id`` with its descriptor (from ``describe``); re-adding an id replaces it."""

    @abstractmethod
    def remove(self, kf_id: int) -> None:
        """Forget keyframe ``kf_id`` (no-op when it is not indexed)."""

    @abstractmethod
    def query(self, descriptor: np.ndarray, k: int | None = None) -> Ranking:
        """The ``k`` (None: all) indexed keyframes most similar to ``descriptor``, best first."""

    @property
    @abstractmethod
    def ids(self) -> list[int]:
        """Ids of the indexed keyframes."""

    def fit(self) -> None:
        """Re-fit what the recognizer learns from its keyframes (vocabulary, clusters, whitening) on all of them,
        and re-index them. Recognizers that learn nothing do nothing."""

    def background_fit(self) -> Callable[[], Callable[[], None]] | None:
        """When a re-fit is due, the re-fit in two parts, so that the index stays usable while it runs (local
        mapping calls it after each keyframe): the returned function learns from a snapshot taken now without
        touching the index, and may run on another thread while the index is queried and changed; the function
        it returns installs the result and must run while the index is not in use. None when nothing is due, or
        for recognizers that re-fit otherwise (on a query) or learn nothing."""
        return None

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to restore the recognizer with ``load_state``, as named arrays (no objects)."""

    @abstractmethod
    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the state saved by ``state``.

        Raises:
            MapFormatError: arrays missing or inconsistent (the message names them).
        """

    def __len__(self) -> int:
        return len(self.ids)

    def describe_checked(self, view: View) -> np.ndarray:
        """``describe``, with a clear error when the recognizer needs the image and the view has none."""
        if self.needs_image and view.image is None:
            raise ConfigError(f'place recognizer {self.name!r} needs the colour image, which is not available here '
                              f'(features received from another node, or keyframes of a map file)')
        return self.describe(view)


def require(state: dict[str, np.ndarray], names: tuple[str, ...], recognizer: str) -> None:
    """MapFormatError unless ``state`` has every array of ``names``."""
    if missing := [n for n in names if n not in state]:
        raise MapFormatError(f'the saved state of place recognizer {recognizer!r} lacks {", ".join(missing)}')


class GlobalDescriptorRecognizer(PlaceRecognizer):
    """A recognizer whose descriptor is one (D,) vector per image, ranked by cosine similarity (exhaustive search,
    by a faiss inner-product index where faiss is installed, by numpy otherwise). Subclasses implement ``describe``
    (returning any (D,) vector; it is L2-normalised here)."""

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        self._ids: list[int] = []
        self._vectors = np.zeros((0, 0), np.float32)
        self._faiss = None

    @property
    def ids(self) -> list[int]:
        return list(self._ids)

    @staticmethod
    def _normalised(vector: np.ndarray) -> np.ndarray:
        v = np.asarray(vector, np.float32).reshape(-1)
        return v / max(float(np.linalg.norm(v)), 1e-12)

    def add(self, kf_id: int, descriptor: np.ndarray) -> None:
        self._drop(kf_id)
        v = self._normalised(descriptor)
        if self._vectors.shape[1] not in (0, len(v)):
            raise ValueError(f'descriptor of keyframe {kf_id} has {len(v)} dimensions, the index '
                             f'{self._vectors.shape[1]}')
        self._vectors = np.vstack([self._vectors.reshape(-1, len(v)), v[None]])
        self._ids.append(int(kf_id))
        self._faiss = None

    def remove(self, kf_id: int) -> None:
        self._drop(kf_id)

    def _drop(self, kf_id: int) -> None:
        """Remove keyframe ``kf_id``'s vector, if it has one."""
        if kf_id in self._ids:
            row = self._ids.index(kf_id)
            del self._ids[row]
            self._vectors = np.delete(self._vectors, row, axis=0)
            self._faiss = None

    def query(self, descriptor: np.ndarray, k: int | None = None) -> Ranking:
        if not self._ids:
            return Ranking(np.zeros(0, np.int64), np.zeros(0))
        query = self._normalised(descriptor)
        k = len(self._ids) if k is None else min(k, len(self._ids))
        if faiss is None:
            scores = self._vectors @ query
            order = np.argsort(-scores, kind='stable')[:k]
            scores = scores[order]
        else:
            if self._faiss is None:
                self._faiss = faiss.IndexFlatIP(self._vectors.shape[1])
                self._faiss.add(np.ascontiguousarray(self._vectors, np.float32))
            scores, order = (row[0] for row in self._faiss.search(query[None], k))
        return Ranking(np.asarray(self._ids, np.int64)[order], scores.astype(np.float64))

    def state(self) -> dict[str, np.ndarray]:
        return {'ids': np.asarray(self._ids, np.int64), 'vectors': self._vectors}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        require(state, ('ids', 'vectors'), self.name)
        ids, vectors = state['ids'], state['vectors']
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise MapFormatError(f'place recognizer {self.name!r}: {len(ids)} ids but vectors of shape '
                                 f'{vectors.shape}')
        self._ids, self._vectors = [int(i) for i in ids], vectors.astype(np.float32)
        self._faiss = None


RECOGNIZERS: Registry[PlaceRecognizer] = Registry(
    'place recognizer', __package__, frozenset({'base', 'backbones', 'netvlad_model', 'patch_matching', 'train'}))
register = RECOGNIZERS.register


def create_recognizer(name: str, conf: dict | None = None) -> PlaceRecognizer:
    """The place recognizer registered as ``name`` with options ``conf``.

    Raises:
        ConfigError: unknown name (the message lists the registered ones) or option.
    """
    return RECOGNIZERS.create(name, conf)
