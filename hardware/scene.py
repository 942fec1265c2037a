"""Synthetic camera frames: a QR ticket on a phone screen in a cluttered scene.

Used at run time by the demo (a fake camera needs something to show), by
images/make_images.py (the committed sample frames) and by bench/decode.py
(the hard set).  Every frame is a pure function of its arguments and seed, so
a failing bench case can be rendered again and looked at.

The phone is drawn flat in its own canvas, then placed in the frame by a
homography built from a pinhole view of the phone tilted in 3-D, so
perspective foreshortening is real rather than a corner jitter.  Optics and
sensor effects (glare, contrast, blur, noise) are applied to the composite in
the order light meets them: screen reflection, exposure, lens, sensor.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import segno

__all__ = [
    "CAMERA_AXES",
    "DIFFICULTIES",
    "HARD_AXES",
    "PHONE_AXES",
    "Conditions",
    "Difficulty",
    "HardSample",
    "hard_set",
    "render_empty",
    "render_frame",
    "render_scene",
]

Size = tuple[int, int]  # (width, height), the order cameras are configured in
Image = np.ndarray

_BASE45 = string.digits + string.ascii_uppercase + " $%*+-./:"
_SCREEN_TEXT = ("SUMMER SHOW 7", "ROW 12  SEAT B", "DOORS 19:30", "SHOW THIS CODE AT THE GATE")
_WORDS = ("GATE 3", "EXIT", "TICKETS", "ROW", "NO ENTRY", "WELCOME", "SECTION B", "BAR")


@dataclass(frozen=True)
class Conditions:
    """The concrete viewing conditions of one code in one frame."""

    module_px: float = 5.0  #: size of one QR module on the sensor, pixels
    rotation: float = 0.0  #: in-plane rotation, degrees
    tilt: float = 0.0  #: out-of-plane tilt of the phone, degrees
    blur: float = 0.0  #: extra Gaussian blur sigma (defocus), pixels
    motion: float = 0.0  #: motion blur length, pixels
    noise: float = 0.0  #: sensor noise sigma, grey levels
    contrast: float = 1.0  #: global contrast, 1 = full range
    glare: float = 0.0  #: strength of a specular reflection on the screen, 0..1
    inverted: bool = False  #: light modules on a dark screen (a dark-mode wallet, colour inversion)
    grid: float = 0.0  #: depth of the screen's pixel grid, 0..1: beats against the sensor's (moire)
    dark_scene: float = 0.0  #: 0..1: a dark venue, so exposure rises and the bright screen blooms
    cover: float = 0.0  #: depth of a finger over one edge of the code, as a fraction of its side


@dataclass(frozen=True)
class Difficulty:
    """Ranges that `Conditions` are drawn from (uniformly, per frame)."""

    module_px: tuple[float, float]
    rotation: tuple[float, float]
    tilt: tuple[float, float]
    blur: tuple[float, float]
    motion: tuple[float, float]
    noise: tuple[float, float]
    contrast: tuple[float, float]
    glare: tuple[float, float]

    def sample(self, rng: np.random.Generator) -> Conditions:
        def draw(bounds: tuple[float, float]) -> float:
            return float(rng.uniform(bounds[0], bounds[1]))

        return Conditions(
            module_px=draw(self.module_px),
            rotation=draw(self.rotation) * float(rng.choice((-1.0, 1.0))),
            tilt=draw(self.tilt),
            blur=draw(self.blur),
            motion=draw(self.motion),
            noise=draw(self.noise),
            contrast=draw(self.contrast),
            glare=draw(self.glare),
        )


#: Named presets.  "default" is what a phone held to a gate camera looks like on
#: a good day and must always decode; "sample" is "default" without sensor
#: noise, so committed PNGs compress small.
DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty((5.0, 7.0), (0, 10), (0, 10), (0, 0.3), (0, 0), (0, 1), (0.9, 1.0), (0, 0)),
    "default": Difficulty((3.5, 6.0), (0, 30), (0, 25), (0, 0.8), (0, 2), (0, 3), (0.6, 1.0), (0, 0.3)),
    "sample": Difficulty((3.5, 5.0), (0, 20), (0, 20), (0, 0.6), (0, 0), (0, 0), (0.7, 1.0), (0, 0.2)),
    "hard": Difficulty((1.6, 5.0), (0, 90), (0, 55), (0, 2.2), (0, 6), (0, 12), (0.2, 1.0), (0, 0.8)),
}


def render_frame(
    qr_text: str,
    *,
    size: Size = (640, 480),
    seed: int,
    difficulty: str | Difficulty | Conditions = "default",
    error: str = "m",
) -> Image:
    """Render one grayscale frame (uint8, shape (height, width)) showing `qr_text`."""
    return render_scene([qr_text], size=size, seed=seed, difficulty=difficulty, error=error)


def render_empty(size: Size = (640, 480), seed: int = 0, *, difficulty: str | Difficulty = "default") -> Image:
    """Render an idle frame: the same kind of clutter, sometimes a phone, no code."""
    rng = np.random.default_rng(seed)
    cond = _conditions(difficulty, rng)
    frame = _background(size, rng)
    if rng.random() < 0.5:
        phone = _phone_canvas(None, 6, rng)
        frame = _place(frame, phone, _homography(phone, (0, 0, *size), 6, cond, rng))
    return _finish(frame, cond, rng)


def render_scene(
    texts: Sequence[str],
    *,
    size: Size = (640, 480),
    seed: int,
    difficulty: str | Difficulty | Conditions = "default",
    error: str = "m",
) -> Image:
    """Render a frame with one phone per text, side by side (an empty list renders idle).

    ``error`` is the QR error-correction level of the codes ("l", "m", "q", "h").
    """
    rng = np.random.default_rng(seed)
    cond = _conditions(difficulty, rng)
    frame = _background(size, rng) * (1.0 - 0.85 * cond.dark_scene)
    width, height = size
    slot = width / max(1, len(texts))
    for i, text in enumerate(texts):
        matrix = _qr_matrix(text, error)
        k = max(2, math.ceil(cond.module_px))
        phone = _screen_effects(_phone_canvas(matrix, k, rng), cond, k, rng)
        region = (int(i * slot), 0, int((i + 1) * slot), height)
        h = _homography(phone, region, k, cond, rng)
        frame = _place(frame, phone, h)
        if cond.glare > 0:
            frame = _glare(frame, h, phone, cond.glare, rng)
    if cond.dark_scene > 0:
        frame = _bloom(frame, cond.module_px)
    return _finish(frame, cond, rng)


@dataclass(frozen=True)
class HardSample:
    """One bench case: the frame, the texts it shows and why it is hard."""

    image: Image
    texts: tuple[str, ...]
    axis: str
    conditions: Conditions


#: The axes the hard set stresses one at a time, then all at once ("mixed").
CAMERA_AXES = ("blur", "perspective", "rotation", "noise", "low_contrast", "glare", "small", "mixed")
#: What a phone screen adds: its pixel grid (moire), a bright screen in a dark
#: venue, dark mode, a finger over an edge, a steep tilt, a small code far away.
PHONE_AXES = ("screen_grid", "dark_scene", "inverted", "edge_covered", "steep_tilt", "far_small")
HARD_AXES = CAMERA_AXES + PHONE_AXES


def hard_set(
    texts: Sequence[str] | None = None, n: int = 400, seed: int = 0, size: Size = (640, 480)
) -> Iterator[HardSample]:
    """Yield `n` frames cycling through `HARD_AXES`, each pushed hard on one axis.

    Default texts are ticket-sized Base45 strings (104-144 characters, a
    QR version 5-6 at level M), the size a signed ticket really has.
    """
    rng = np.random.default_rng(seed)
    pool = list(texts) if texts else [_random_ticket_text(rng) for _ in range(16)]
    base = Conditions(module_px=4.0, rotation=0.0, tilt=8.0, blur=0.3, noise=2.0)
    for i in range(n):
        axis = HARD_AXES[i % len(HARD_AXES)]
        cond = _stress(axis, base, rng)
        text = pool[int(rng.integers(len(pool)))]
        image = render_scene([text], size=size, seed=seed * 100_003 + i, difficulty=cond)
        yield HardSample(image, (text,), axis, cond)


def _stress(axis: str, base: Conditions, rng: np.random.Generator) -> Conditions:
    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    rot = u(-15, 15)
    if axis == "blur":
        return replace(base, rotation=rot, blur=u(1.0, 2.6), motion=u(0, 5))
    if axis == "perspective":
        return replace(base, rotation=rot, tilt=u(35, 62))
    if axis == "rotation":
        return replace(base, rotation=u(0, 90))
    if axis == "noise":
        return replace(base, rotation=rot, noise=u(8, 22))
    if axis == "low_contrast":
        return replace(base, rotation=rot, contrast=u(0.12, 0.35), noise=u(1, 3))
    if axis == "glare":
        return replace(base, rotation=rot, glare=u(0.6, 0.95))
    if axis == "small":
        return replace(base, rotation=rot, module_px=u(1.5, 2.4), blur=u(0.2, 0.6))
    if axis in PHONE_AXES:
        return _phone_stress(axis, replace(base, rotation=rot, module_px=u(3.0, 6.0)), u)
    return DIFFICULTIES["hard"].sample(rng)


def _phone_stress(axis: str, phone: Conditions, u: Callable[[float, float], float]) -> Conditions:
    """A phone screen at the module sizes a phone held to the camera gives, pushed on one axis."""
    if axis == "screen_grid":
        return replace(phone, grid=u(0.3, 0.6))
    if axis == "dark_scene":
        return replace(phone, dark_scene=u(0.4, 1.0), noise=u(2, 6))
    if axis == "inverted":
        return replace(phone, inverted=True, tilt=u(0, 30), blur=u(0.2, 1.2))
    if axis == "edge_covered":
        return replace(phone, cover=u(0.15, 0.35))
    if axis == "steep_tilt":
        return replace(phone, module_px=u(4.0, 6.0), tilt=u(55, 68))
    return replace(phone, module_px=u(1.8, 2.6), tilt=u(0, 20), grid=u(0.2, 0.4))  # far_small


def _random_ticket_text(rng: np.random.Generator) -> str:
    body = "".join(_BASE45[int(j)] for j in rng.integers(0, len(_BASE45), int(rng.integers(100, 140))))
    return "QG1:" + body


def _conditions(difficulty: str | Difficulty | Conditions, rng: np.random.Generator) -> Conditions:
    if isinstance(difficulty, Conditions):
        return difficulty
    if isinstance(difficulty, Difficulty):
        return difficulty.sample(rng)
    try:
        return DIFFICULTIES[difficulty].sample(rng)
    except KeyError:
        raise ValueError(f"unknown difficulty {difficulty!r}: use one of {sorted(DIFFICULTIES)}") from None


def _qr_matrix(text: str, error: str = "m") -> np.ndarray:
    # make_qr, not make: segno would pick a Micro QR for short texts, which
    # phones' ticket apps never show and our decoders are not configured for.
    # boost_error=False: the level asked for is the level drawn.
    qr = segno.make_qr(text, error=error, boost_error=False)
    return np.asarray(qr.matrix, dtype=np.uint8)


def _background(size: Size, rng: np.random.Generator) -> Image:
    width, height = size
    # Low-frequency shading: a coarse random field blown up, like uneven light.
    coarse = rng.uniform(60, 190, size=(4, 5)).astype(np.float32)
    # uint8 while drawing: OpenCV 5's putText refuses float images.
    img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.uint8)
    for _ in range(int(rng.integers(4, 10))):
        grey = float(rng.uniform(20, 235))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 12, width // 3)), int(rng.integers(height // 12, height // 3))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + w, y + h), grey, -1)
        else:
            cv2.ellipse(img, (x, y), (w // 2, h // 2), float(rng.uniform(0, 180)), 0, 360, grey, -1)
    for _ in range(int(rng.integers(2, 6))):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(img, p1, p2, float(rng.uniform(0, 255)), int(rng.integers(1, 6)), cv2.LINE_AA)
    for _ in range(int(rng.integers(1, 4))):
        org = (int(rng.integers(0, width - 60)), int(rng.integers(20, height)))
        word = _WORDS[int(rng.integers(len(_WORDS)))]
        scale = float(rng.uniform(0.5, 1.6)) * width / 640
        cv2.putText(img, word, org, cv2.FONT_HERSHEY_SIMPLEX, scale, float(rng.uniform(0, 255)), 2, cv2.LINE_AA)
    return cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.2)


@dataclass(frozen=True)
class _Phone:
    """A phone drawn flat: grey levels, silhouette mask, and the code's corners."""

    canvas: Image
    mask: Image
    code: np.ndarray  # 4x2 float32 corners of the code with its quiet zone (the screen if none)
    screen: tuple[int, int, int, int] = (0, 0, 0, 0)  # x0, y0, x1, y1 of the screen in the canvas


def _phone_canvas(matrix: np.ndarray | None, k: int, rng: np.random.Generator) -> _Phone:
    """The phone seen flat at `k` canvas pixels per QR module."""
    n = (len(matrix) if matrix is not None else 29) + 8  # segno's matrix has no quiet zone
    screen_w = int(n * k * 1.2)
    screen_h = int(screen_w * 2.0)
    bezel = max(2, screen_w // 16)
    w, h = screen_w + 2 * bezel, screen_h + 2 * bezel
    body = float(rng.uniform(15, 60))
    canvas = np.full((h, w), body, np.uint8)
    white = float(rng.uniform(215, 250))
    canvas[bezel : bezel + screen_h, bezel : bezel + screen_w] = white
    # A ticket app: a coloured banner (grey here) and lines of text around the code.
    canvas[bezel : bezel + screen_h // 9, bezel : bezel + screen_w] = float(rng.uniform(60, 140))
    qr_top = bezel + int(screen_h * 0.28)
    qr_left = bezel + (screen_w - n * k) // 2
    scale = screen_w / 420
    for j, line_y in enumerate((0.20, 0.75, 0.81, 0.87)):
        y = bezel + int(screen_h * line_y)
        width = int(screen_w * (0.6 if j == 0 else float(rng.uniform(0.3, 0.6))))
        text = _SCREEN_TEXT[j][: max(1, width // max(1, int(18 * scale)))]
        cv2.putText(canvas, text, (bezel + screen_w // 8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 40.0, 1)
    if matrix is not None:
        dark = float(rng.uniform(10, 45))
        qr = np.where(np.kron(matrix, np.ones((k, k), np.uint8)) > 0, dark, white).astype(np.uint8)
        canvas[qr_top + 4 * k : qr_top + (n - 4) * k, qr_left + 4 * k : qr_left + (n - 4) * k] = qr
    mask = np.zeros((h, w), np.float32)
    radius = bezel * 3
    cv2.rectangle(mask, (radius, 0), (w - radius, h), 1.0, -1)
    cv2.rectangle(mask, (0, radius), (w, h - radius), 1.0, -1)
    for cx, cy in ((radius, radius), (w - radius, radius), (radius, h - radius), (w - radius, h - radius)):
        cv2.circle(mask, (cx, cy), radius, 1.0, -1, cv2.LINE_AA)
    if matrix is None:
        x0, y0, side_w, side_h = bezel, bezel, screen_w, screen_h
    else:
        x0, y0, side_w, side_h = qr_left, qr_top, n * k, n * k
    code = np.array([[x0, y0], [x0 + side_w, y0], [x0 + side_w, y0 + side_h], [x0, y0 + side_h]], np.float32)
    screen = (bezel, bezel, bezel + screen_w, bezel + screen_h)
    return _Phone(canvas.astype(np.float32), mask, code, screen)


def _screen_effects(phone: _Phone, cond: Conditions, k: int, rng: np.random.Generator) -> _Phone:
    """Dark mode, a finger, the pixel grid and the screen's own light, in that order (each only when asked,
    so frames without them draw nothing more from `rng` and stay as they were)."""
    canvas = phone.canvas.copy()
    x0, y0, x1, y1 = phone.screen
    screen = canvas[y0:y1, x0:x1]
    if cond.inverted:
        screen[:] = 255.0 - screen
    if cond.cover > 0:
        _finger(canvas, phone.code, k, cond.cover, rng)
    if cond.grid > 0:
        period = int(rng.integers(2, 4))
        screen[::period, :] *= 1.0 - cond.grid
        screen[:, ::period] *= 1.0 - cond.grid
    if cond.dark_scene > 0:
        screen *= 1.0 + 1.2 * cond.dark_scene  # an emissive screen, exposed for the dark room around it
    return replace(phone, canvas=canvas)


def _finger(canvas: Image, code: np.ndarray, k: int, depth: float, rng: np.random.Generator) -> None:
    """A finger over one edge of the code, its rounded tip `depth` of the code's side in from that edge."""
    quiet = 4 * k
    lo, hi = code[0] + quiet, code[2] - quiet  # the code proper, without its quiet zone
    side = float(hi[0] - lo[0])
    radius = side * float(rng.uniform(0.2, 0.3))  # a fingertip is about half a code wide
    along = float(rng.uniform(0.3, 0.7)) * side
    reach = depth * side - radius  # from the code's edge to the centre of the tip
    edge = int(rng.integers(4))  # top, right, bottom, left
    far = 10.0 * side  # the finger goes on off the screen
    if edge == 0:
        tip, body = (lo[0] + along, lo[1] + reach), (lo[0] + along - radius, lo[1] - far, 2 * radius, far + reach)
    elif edge == 2:
        tip, body = (lo[0] + along, hi[1] - reach), (lo[0] + along - radius, hi[1] - reach, 2 * radius, far)
    elif edge == 1:
        tip, body = (hi[0] - reach, lo[1] + along), (hi[0] - reach, lo[1] + along - radius, far, 2 * radius)
    else:
        tip, body = (lo[0] + reach, lo[1] + along), (lo[0] - far, lo[1] + along - radius, far + reach, 2 * radius)
    skin = float(rng.uniform(120, 190))
    mask = np.zeros(canvas.shape, np.uint8)
    x, y, w, h = (round(v) for v in body)
    cv2.rectangle(mask, (x, y), (x + w, y + h), 255, -1)
    cv2.circle(mask, (round(tip[0]), round(tip[1])), round(radius), 255, -1, cv2.LINE_AA)
    # Soft edge, and the rim in its own shadow as the skin curves away from the light.
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), max(1.0, k / 2))
    shade = skin * (0.6 + 0.4 * np.clip(alpha * 2.0 - 1.0, 0.0, 1.0))
    canvas[:] = canvas * (1.0 - alpha) + shade * alpha


def _bloom(frame: Image, module_px: float) -> Image:
    """Light past the sensor's full well spills into its neighbours: white modules swell into dark ones."""
    excess = np.maximum(frame - 255.0, 0.0)
    return frame + 0.5 * cv2.GaussianBlur(excess, (0, 0), max(0.8, 0.5 * module_px))


def _homography(
    phone: _Phone, region: tuple[int, int, int, int], k: int, cond: Conditions, rng: np.random.Generator
) -> np.ndarray:
    h, w = phone.canvas.shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    # Centre the projection on the code so the tilt pivots around it.
    anchor = phone.code.mean(axis=0)
    scale = cond.module_px / k
    theta = math.radians(cond.rotation)
    axis = float(rng.uniform(0, math.pi))
    tilt = math.radians(cond.tilt)
    focal = 900.0

    def project(points: np.ndarray, s: float) -> np.ndarray:
        p = (points - anchor) * s
        # Rotate about an in-plane axis by `tilt`, then view with a pinhole
        # camera one focal length away: that is the perspective.
        ca, sa = math.cos(axis), math.sin(axis)
        u = p[:, 0] * ca + p[:, 1] * sa
        v = -p[:, 0] * sa + p[:, 1] * ca
        z = u * math.sin(tilt)
        u = u * math.cos(tilt)
        x, y = u * ca - v * sa, u * sa + v * ca
        x, y = x * focal / (focal + z), y * focal / (focal + z)
        c, s_ = math.cos(theta), math.sin(theta)
        return np.stack([x * c - y * s_, x * s_ + y * c], axis=1).astype(np.float32)

    x0, y0, x1, y1 = region
    qr = phone.code
    margin = 4.0
    # Shrink until the code fits its region: a code cut by the frame edge is a
    # framing problem, not a decoder one.
    for _ in range(20):
        dst_qr = project(qr, scale)
        span = dst_qr.max(axis=0) - dst_qr.min(axis=0)
        if span[0] <= (x1 - x0) - 2 * margin and span[1] <= (y1 - y0) - 2 * margin:
            break
        scale *= 0.9
    lo = np.array([x0 + margin, y0 + margin]) - dst_qr.min(axis=0)
    hi = np.array([x1 - margin, y1 - margin]) - dst_qr.max(axis=0)
    offset = np.array([rng.uniform(lo[0], max(lo[0], hi[0])), rng.uniform(lo[1], max(lo[1], hi[1]))])
    dst = project(src, scale) + offset.astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst)


def _place(frame: Image, phone: _Phone, h: np.ndarray) -> Image:
    size = (frame.shape[1], frame.shape[0])
    grey = cv2.warpPerspective(phone.canvas, h, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(phone.mask, h, size, flags=cv2.INTER_LINEAR)
    return frame * (1.0 - alpha) + grey * alpha


def _glare(frame: Image, h: np.ndarray, phone: _Phone, strength: float, rng: np.random.Generator) -> Image:
    qr = cv2.perspectiveTransform(phone.code[None], h)[0]
    centre = qr.mean(axis=0) + (qr[1] - qr[0]) * float(rng.uniform(-0.35, 0.35))
    radius = float(np.linalg.norm(qr[1] - qr[0])) * float(rng.uniform(0.15, 0.4))
    yy, xx = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]].astype(np.float32)
    stretch = float(rng.uniform(1.0, 2.5))
    blob = np.exp(-(((xx - centre[0]) / (radius * stretch)) ** 2 + ((yy - centre[1]) / radius) ** 2))
    # A reflection adds light: it lifts dark modules toward white, which is
    # what makes glare hard (contrast vanishes under it).
    return frame + strength * blob * (255.0 - frame)


def _finish(frame: Image, cond: Conditions, rng: np.random.Generator) -> Image:
    mean = float(frame.mean())
    frame = mean + (frame - mean) * cond.contrast
    # Optics: the lens never renders a step as a step; `blur` adds defocus.
    frame = cv2.GaussianBlur(frame, (0, 0), math.hypot(0.5, cond.blur))
    if cond.motion >= 1.0:
        length = round(cond.motion)
        kernel: np.ndarray = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        frame = cv2.filter2D(frame, -1, (kernel / max(float(kernel.sum()), 1e-6)).astype(np.float32))
    if cond.noise > 0:
        frame = frame + rng.normal(0.0, cond.noise, frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)
