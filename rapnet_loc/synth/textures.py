"""Texture library: photographs bundled with scikit-image plus procedural, seamlessly tiling textures.

Every texture is an (H, W, 3) uint8 RGB image with a mip pyramid (``Texture.levels``, each level half the size of
the previous one, built with ``cv2.pyrDown``). Procedural textures are periodic (built from FFT-filtered noise
and whole numbers of tiles), so the renderer can repeat them across large quads with ``BORDER_WRAP``.
Content depends only on the texture name: the library is identical for every scene, sequence and seed.

Names (``TEXTURE_NAMES`` lists them all):

- photographs: ``astronaut``, ``coffee``, ``chelsea``, ``rocket``, ``hubble``, ``camera`` (grey), ``text``,
  ``page``; material photos: ``brick`` (tinted), ``concrete`` (gravel), ``grass``;
- ``poster_<photo>``: a framed print of a photograph with a caption;
- procedural: ``wood``, ``wood_dark``, ``tiles``, ``carpet`` (one motif repeated), ``plaster``, ``ceiling``,
  ``metal``, ``cardboard``, ``books``, ``products``, ``door_<k>`` (k = 0..3), ``fabric_<k>`` (k = 0..5),
  ``face``, ``hair``, ``skin``, ``screen``, ``whiteboard``, ``pillar_<k>`` (k = 0..3);
- ``paint_<colour>``: one flat colour (featureless), colour in ``PAINTS``.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import skimage.data

PAINTS = {'white': (236, 234, 228), 'cream': (232, 222, 196), 'grey': (186, 188, 190), 'blue': (170, 190, 210),
          'green': (182, 204, 178), 'beige': (214, 200, 176)}
PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'hubble', 'camera', 'text', 'page')
_PHOTO_LOADERS = {'astronaut': skimage.data.astronaut, 'coffee': skimage.data.coffee,
                  'chelsea': skimage.data.chelsea, 'rocket': skimage.data.rocket,
                  'hubble': skimage.data.hubble_deep_field, 'camera': skimage.data.camera,
                  'text': skimage.data.text, 'page': skimage.data.page}
N_DOORS, N_FABRICS, N_PILLARS = 4, 6, 4
MIN_LEVEL_SIDE = 4


@dataclass(frozen=True)
class Texture:
    """One texture and its mip pyramid: ``levels[0]`` is (H, W, 3) uint8, level ``i`` about (H/2^i, W/2^i, 3)."""

    name: str
    levels: tuple[np.ndarray, ...]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of level 0."""
        return self.levels[0].shape[1], self.levels[0].shape[0]


def _pyramid(img: np.ndarray) -> tuple[np.ndarray, ...]:
    levels = [np.ascontiguousarray(img)]
    while min(levels[-1].shape[:2]) >= 2 * MIN_LEVEL_SIDE:
        levels.append(cv2.pyrDown(levels[-1]))
    return tuple(levels)


def _rgb(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 from a grey, boolean or RGB(A) image."""
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3].astype(np.uint8))


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def periodic_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float = 2.0,
                   aniso: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """(H, W) float32 seamlessly tiling noise with a 1/f^beta spectrum, normalised to zero mean, unit std.

    ``aniso`` stretches the spectrum per axis (y, x): a large x value gives streaks along x (brushed metal).
    """
    fy = np.fft.fftfreq(shape[0])[:, None] * aniso[0]
    fx = np.fft.rfftfreq(shape[1])[None, :] * aniso[1]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = np.inf
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) / f ** (beta / 2.0)
    out = np.fft.irfft2(spectrum, s=shape)
    return ((out - out.mean()) / (out.std() + 1e-12)).astype(np.float32)


def _mix(a: tuple, b: tuple, t: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 blend between colours ``a`` and ``b`` by ``t`` (H, W) in [0, 1]."""
    a, b = np.float32(a), np.float32(b)
    t = np.clip(t, 0.0, 1.0)[..., None]
    return np.clip(a * (1.0 - t) + b * t, 0, 255).astype(np.uint8)


def _speckle(img: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    noise = periodic_noise(rng, img.shape[:2], beta=0.5)[..., None] * amount
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _wood(name: str, light: bool) -> np.ndarray:
    rng = _rng(name)
    h, w = 256, 512
    warp = periodic_noise(rng, (h, w), beta=3.0, aniso=(1.0, 4.0))
    y = np.arange(h, dtype=np.float32)[:, None] / h
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * (14 * y + 0.35 * warp))
    grain = periodic_noise(rng, (h, w), beta=1.0, aniso=(1.0, 12.0))
    t = 0.7 * rings + 0.12 * grain
    colours = ((196, 150, 100), (150, 100, 60)) if light else ((110, 70, 45), (70, 42, 28))
    img = _mix(*colours, t)
    for x in range(0, w, w // 4):   # plank joints
        img[:, x:x + 2] = (img[:, x:x + 2] * 0.6).astype(np.uint8)
    return img


def _tiles() -> np.ndarray:
    rng = _rng('tiles')
    n, cell = 4, 128
    img = np.zeros((n * cell, n * cell, 3), np.uint8)
    for i in range(n):
        for j in range(n):
            shade = 205 + rng.integers(-12, 12)
            img[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell] = (shade, shade - 4, shade - 14)
    img = _speckle(img, rng, 7.0)
    img[::cell, :] = img[1::cell, :] = (120, 118, 112)
    img[:, ::cell] = img[:, 1::cell] = (120, 118, 112)
    return img


def _carpet() -> np.ndarray:
    rng = _rng('carpet')
    cell = 64
    motif = np.full((cell, cell, 3), (120, 40, 45), np.uint8)
    c = cell // 2
    cv2.fillConvexPoly(motif, np.array([[c, 6], [cell - 6, c], [c, cell - 6], [6, c]]), (200, 160, 90))
    cv2.fillConvexPoly(motif, np.array([[c, 18], [cell - 18, c], [c, cell - 18], [18, c]]), (60, 70, 120))
    cv2.circle(motif, (c, c), 5, (230, 220, 200), -1)
    for corner in ((0, 0), (0, cell), (cell, 0), (cell, cell)):
        cv2.circle(motif, corner, 8, (200, 160, 90), -1)
    return _speckle(np.tile(motif, (4, 4, 1)), rng, 10.0)


def _ceiling() -> np.ndarray:
    rng = _rng('ceiling')
    img = np.full((256, 256, 3), 228, np.uint8)
    img = _speckle(img, rng, 6.0)
    img[::128, :] = img[1::128, :] = img[:, ::128] = img[:, 1::128] = (170, 170, 165)
    return img


def _flat_noise(name: str, base: tuple, amount: float, beta: float = 2.0,
                aniso: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    rng = _rng(name)
    n = periodic_noise(rng, (256, 256), beta=beta, aniso=aniso)[..., None]
    return np.clip(np.float32(base) + amount * n, 0, 255).astype(np.uint8)


def _door(k: int) -> np.ndarray:
    """A door seen from the front, 0.9 m x 2.05 m mapped on 180x410 px."""
    palettes = [((196, 150, 100), (150, 100, 60)), ((230, 230, 225), (200, 200, 195)),
                ((120, 80, 50), (90, 58, 36)), ((150, 170, 190), (120, 140, 160))]
    rng = _rng(f'door_{k}')
    h, w = 410, 180
    t = 0.5 + 0.2 * periodic_noise(rng, (h, w), beta=2.5, aniso=(1.0, 6.0))
    img = _mix(*palettes[k % len(palettes)], t)
    panels = [((20, 30), (160, 180)), ((20, 220), (160, 390))] if k % 2 == 0 else [((25, 40), (155, 380))]
    for (x0, y0), (x1, y1) in panels:
        cv2.rectangle(img, (x0, y0), (x1, y1), (70, 50, 35), 3)
        cv2.rectangle(img, (x0 + 6, y0 + 6), (x1 - 6, y1 - 6), (235, 225, 210), 1)
    cv2.circle(img, (150, 210), 9, (200, 190, 120), -1)
    cv2.circle(img, (150, 210), 9, (60, 50, 30), 1)
    cv2.rectangle(img, (60, 8), (120, 26), (245, 245, 240), -1)
    cv2.putText(img, f'{101 + 7 * k}', (68, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
    return img


def _fabric(k: int) -> np.ndarray:
    rng = _rng(f'fabric_{k}')
    colours = [(40, 60, 140), (150, 30, 40), (40, 110, 60), (60, 60, 65), (200, 170, 60), (120, 70, 140)]
    base = np.float32(colours[k % len(colours)])
    img = np.empty((128, 128, 3), np.float32)
    img[:] = base
    y, x = np.mgrid[0:128, 0:128]
    if k % 3 != 2:   # stripes or checks; every third fabric is plain
        pattern = (y // 16) % 2 == 0 if k % 3 == 0 else (x // 16 + y // 16) % 2 == 0
        img[pattern] = img[pattern] * 0.6 + 90
    img += 14 * periodic_noise(rng, (128, 128), beta=0.8)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _books() -> np.ndarray:
    rng = _rng('books')
    h, w = 128, 512
    img = np.full((h, w, 3), (60, 45, 35), np.uint8)
    x = 0
    while x < w - 6:
        bw = int(rng.integers(8, 22))
        bh = int(rng.integers(80, 124))
        colour = tuple(int(c) for c in rng.integers(30, 230, 3))
        cv2.rectangle(img, (x, h - bh), (min(x + bw, w - 1) - 1, h - 1), colour, -1)
        cv2.line(img, (x + 2, h - bh + 10), (x + bw - 3, h - bh + 10), (230, 220, 180), 1)
        x += bw
    return img


def _products() -> np.ndarray:
    """Supermarket shelf front: a row of packages with labels, coloured stripes and photo crops."""
    rng = _rng('products')
    h, w = 128, 512
    img = np.full((h, w, 3), (240, 240, 235), np.uint8)
    photos = [_rgb(_PHOTO_LOADERS[n]()) for n in ('astronaut', 'coffee', 'chelsea', 'rocket')]
    x = 0
    while x < w - 10:
        pw = int(rng.integers(28, 64))
        ph = int(rng.integers(70, 124))
        x1 = min(x + pw, w) - 2
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        cv2.rectangle(img, (x, h - ph), (x1, h - 1), colour, -1)
        if rng.random() < 0.5:
            photo = photos[int(rng.integers(len(photos)))]
            crop = cv2.resize(photo, (max(x1 - x - 6, 4), max(ph // 3, 4)), interpolation=cv2.INTER_AREA)
            img[h - ph + 8:h - ph + 8 + crop.shape[0], x + 3:x + 3 + crop.shape[1]] = crop
        else:
            cv2.rectangle(img, (x, h - ph // 2), (x1, h - ph // 2 + 8), (250, 250, 250), -1)
        label = ''.join(chr(int(c)) for c in rng.integers(65, 91, 3))
        cv2.putText(img, label, (x + 3, h - 10), cv2.FONT_HERSHEY_PLAIN, 0.9, (255, 255, 255), 1, cv2.LINE_AA)
        x += pw
    return img


def _cardboard() -> np.ndarray:
    img = _flat_noise('cardboard', (180, 140, 95), 10.0, beta=1.5)
    img[:, 118:138] = (205, 190, 160)
    cv2.putText(img, 'FRAGILE', (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (40, 30, 25), 2, cv2.LINE_AA)
    cv2.putText(img, 'THIS SIDE UP', (20, 210), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 30, 25), 1, cv2.LINE_AA)
    return img


def _screen() -> np.ndarray:
    img = np.full((270, 480, 3), 20, np.uint8)
    photo = cv2.resize(_rgb(_PHOTO_LOADERS['rocket']()), (440, 240), interpolation=cv2.INTER_AREA)
    img[15:255, 20:460] = photo
    return img


def _whiteboard() -> np.ndarray:
    rng = _rng('whiteboard')
    img = np.full((256, 384, 3), 242, np.uint8)
    for row in range(4):
        y = 50 + 50 * row
        x = 30
        for _ in range(int(rng.integers(2, 5))):
            word = int(rng.integers(30, 80))
            cv2.line(img, (x, y), (x + word, y + int(rng.integers(-4, 5))), (30, 60, 160), 2, cv2.LINE_AA)
            x += word + 20
    cv2.rectangle(img, (0, 0), (383, 255), (150, 150, 155), 6)
    return img


def _face() -> np.ndarray:
    return np.ascontiguousarray(_rgb(_PHOTO_LOADERS['astronaut']())[30:190, 160:320])


def _pillar(k: int) -> np.ndarray:
    tints = [(190, 188, 182), (176, 186, 196), (200, 186, 170), (180, 196, 180)]
    base = _rgb(skimage.data.gravel()).astype(np.float32)[:256, :256]
    img = np.float32(tints[k % len(tints)]) * (0.8 + 0.2 * base / 255.0)
    img = np.clip(img, 0, 255).astype(np.uint8)
    img[200:216, :] = (90, 90, 95)
    cv2.putText(img, f'P{k + 1}', (100, 120), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (60, 60, 70), 2, cv2.LINE_AA)
    return img


def _poster(photo: str) -> np.ndarray:
    img = _rgb(_PHOTO_LOADERS[photo]())
    h, w = img.shape[:2]
    scale = 360.0 / max(h, w)
    img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    out = np.full((h + 70, w + 40, 3), 245, np.uint8)
    out[20:20 + h, 20:20 + w] = img
    cv2.putText(out, photo.upper(), (24, h + 55), cv2.FONT_HERSHEY_DUPLEX, 1.0, (30, 30, 30), 2, cv2.LINE_AA)
    cv2.rectangle(out, (0, 0), (w + 39, h + 69), (40, 40, 40), 4)
    return out


def _seamless(img: np.ndarray) -> np.ndarray:
    """A photo made periodic by mirroring: (2H, 2W) -> resized back to (H, W)."""
    tiled = np.block([[img, img[:, ::-1]], [img[::-1], img[::-1, ::-1]]]) if img.ndim == 2 else \
        np.concatenate([np.concatenate([img, img[:, ::-1]], 1), np.concatenate([img[::-1], img[::-1, ::-1]], 1)], 0)
    return cv2.resize(tiled, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)


def _brick() -> np.ndarray:
    grey = _seamless(np.rot90(skimage.data.brick()).astype(np.float32)) / 255.0
    return _mix((120, 50, 40), (220, 150, 120), grey)


def _build(name: str) -> np.ndarray:
    """Level-0 image of texture ``name``; raises KeyError for an unknown name."""
    simple = {
        'wood': lambda: _wood('wood', True), 'wood_dark': lambda: _wood('wood_dark', False),
        'tiles': _tiles, 'carpet': _carpet, 'ceiling': _ceiling, 'books': _books, 'products': _products,
        'cardboard': _cardboard, 'screen': _screen, 'whiteboard': _whiteboard, 'face': _face, 'brick': _brick,
        'plaster': lambda: _flat_noise('plaster', (222, 216, 204), 9.0, beta=1.6),
        'metal': lambda: _flat_noise('metal', (165, 168, 172), 12.0, beta=1.2, aniso=(1.0, 20.0)),
        'hair': lambda: _flat_noise('hair', (45, 32, 25), 12.0, beta=1.0, aniso=(12.0, 1.0)),
        'skin': lambda: _flat_noise('skin', (214, 170, 140), 6.0),
        'concrete': lambda: _rgb(_seamless(skimage.data.gravel())),
        'grass': lambda: _mix((30, 70, 20), (120, 180, 60), _seamless(skimage.data.grass().astype(np.float32)) / 255.0),
    }
    if name in simple:
        return simple[name]()
    if name in _PHOTO_LOADERS:
        return _rgb(_PHOTO_LOADERS[name]())
    kind, _, arg = name.partition('_')
    if kind == 'paint' and arg in PAINTS:
        return np.full((8, 8, 3), PAINTS[arg], np.uint8)
    if kind == 'poster' and arg in _PHOTO_LOADERS:
        return _poster(arg)
    makers = {'door': (_door, N_DOORS), 'fabric': (_fabric, N_FABRICS), 'pillar': (_pillar, N_PILLARS)}
    if kind in makers and arg.isdigit() and int(arg) < makers[kind][1]:
        return makers[kind][0](int(arg))
    raise KeyError(name)


TEXTURE_NAMES: tuple[str, ...] = (
    'wood', 'wood_dark', 'tiles', 'carpet', 'ceiling', 'books', 'products', 'cardboard', 'screen', 'whiteboard',
    'face', 'brick', 'plaster', 'metal', 'hair', 'skin', 'concrete', 'grass', *PHOTOS,
    *(f'paint_{c}' for c in PAINTS), *(f'poster_{p}' for p in PHOTOS),
    *(f'door_{k}' for k in range(N_DOORS)), *(f'fabric_{k}' for k in range(N_FABRICS)),
    *(f'pillar_{k}' for k in range(N_PILLARS)))


class TextureBank:
    """Lazily built, cached textures by name; ``index(name)`` gives a stable integer id for the renderer."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._textures: list[Texture] = []

    def index(self, name: str) -> int:
        """Integer id of texture ``name`` (built on first use). Raises KeyError for an unknown name."""
        if name not in self._ids:
            tex = Texture(name, _pyramid(_build(name)))
            self._ids[name] = len(self._textures)
            self._textures.append(tex)
        return self._ids[name]

    def __getitem__(self, index: int) -> Texture:
        return self._textures[index]

    def get(self, name: str) -> Texture:
        return self._textures[self.index(name)]
