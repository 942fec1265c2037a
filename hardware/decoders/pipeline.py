"""The default decoder: zxing-cpp, then a rescue only where a code was seen.

Designed by measurement (bench/decode.py, docs/hardware.md):

- zxing-cpp alone reads the most of the hard set and is the cheapest, so
  every frame gets exactly one zxing pass and an idle frame costs nothing more.
- When zxing-cpp locates a symbol but cannot decode it (a result with a
  position and an error, asked for with ``return_errors``), the frame is
  worth more effort.  Only then, and only on a crop around that symbol, the
  rescue steps run, in this order:

  1. ``sharpen``: unsharp mask, then zxing-cpp.  Blur is the usual reason a
     located code does not decode; this alone reads most rescued frames.
  2. ``upscale``: 2x cubic upscale plus a wider unsharp mask, then zxing-cpp,
     for small codes whose modules are under ~2.5 px.
  3. ``second``: the second decoder (ZBar by default) on a wide, sharpened
     crop.  It reads steep perspectives that zxing-cpp located by a single
     finder pattern and gave up on.
  4. ``sharpen_more``: a stronger unsharp mask, for heavy defocus.

  The first step that reads anything ends the rescue.  The set and order come
  from a greedy cover of the hard-set frames each candidate step read alone;
  contrast equalisation (CLAHE), a global-histogram binarizer and ZBar on the
  raw crop were measured and dropped, as every frame they read was already
  read by a step above.
- A frame where zxing-cpp sees no symbol at all gets no second look: on the
  hard set such frames were rescued less than 1 time in 10 by a full-frame
  retry, and a full-frame retry on every idle frame would double the idle cost.
- Light-on-dark codes (a dark-mode wallet, a phone's colour inversion) are
  read by zxing-cpp's own inverted pass, which reuses the frame's
  binarization.  It costs ~23% on an idle frame, over the 1.2x budget, and
  the normal pass does not locate inverted finder patterns (0 suspects on 40
  inverted frames), so it cannot be asked for only where a code was seen.
  It runs on every ``invert_every``-th frame instead (default 2, from the
  first): a code held to the camera is in view for dozens of frames, so it
  is read at most one frame later, for ~13% on the idle frame.  On those
  frames, when the rescue read nothing, the largest region is rescued again
  on the negative, since a suspect may come from either pass.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from hardware.decoders.base import Decoder, Found, as_gray, ordered_texts
from hardware.decoders.zxing import ZxingDecoder
from hardware.exc import DecoderError

__all__ = ["RESCUE_STEPS", "PipelineDecoder"]

#: The rescue steps in the order they run; names appear in `PipelineDecoder.rescued`.
RESCUE_STEPS = ("sharpen", "upscale", "second", "sharpen_more")

#: At most this many located-but-unread symbols are rescued per frame: bounds
#: the worst case when clutter produces many false detections.
MAX_SUSPECTS = 3

#: Crop margins, as a fraction of the suspect box's longer side.  Tight is
#: enough for zxing-cpp on a box that covers most of the code; ZBar gets a
#: wide crop because a box can be a single finder pattern, a sixth of the code.
TIGHT = 0.3
WIDE = 1.5

#: Wide crops are shrunk before ZBar until the suspect box's longer side is
#: at most this: ZBar's time grows with the pixel count (17 ms for a whole
#: 1280x720 frame), and a box that big holds a code whose modules survive the
#: shrink.  (Shrinking by the crop's side instead, to 400 px, lost the steep
#: tilts: a small, foreshortened box in a wide crop came out at 1-2 px a module.)
SECOND_MAX_BOX = 200

#: Crops with a side under this many pixels are upscaled in step 2; larger
#: ones already have modules wide enough that upscaling only adds cost.
UPSCALE_BELOW = 400


class PipelineDecoder:
    """zxing-cpp first; rescue steps on the crops of symbols it could not read.

    ``second`` is the decoder for step 3 (None skips the step).  ``rescued``
    counts, per step name, the frames that step read: the bench and the
    operations log show which tricks earn their keep.
    """

    def __init__(
        self, primary: ZxingDecoder | None = None, second: Decoder | None = None, *, invert_every: int = 2
    ) -> None:
        if invert_every < 0:
            raise DecoderError(f"invert_every must be 0 (never) or a number of frames, not {invert_every}")
        self.primary = primary if primary is not None else ZxingDecoder()
        self.second = second
        self.invert_every = invert_every
        self.rescued: dict[str, int] = dict.fromkeys(RESCUE_STEPS, 0)
        self._frames = 0

    def decode(self, image: np.ndarray | None) -> list[str]:
        gray = as_gray(image)
        if gray is None:
            return []
        self._frames += 1
        invert = self.invert_every > 0 and (self._frames - 1) % self.invert_every == 0
        scan = self.primary.scan(gray, try_invert=True) if invert else self.primary.scan(gray)
        found = list(scan.found)
        regions = _regions(scan.suspects)[:MAX_SUSPECTS]
        for box in regions:
            found.extend(self._rescue(gray, box))
        if invert and regions and not found:
            # A suspect from the inverted pass cannot be told from one of the normal pass (zxing-cpp's
            # Python results do not say, and a crop's own brightness misled on steep tilts): when nothing
            # was read, the largest region gets the steps again on its negative.  One region only: on
            # every region it doubled the rescue's worst case and read nothing more on the hard set.
            found.extend(self._rescue(255 - gray, regions[0]))
        return ordered_texts(found)

    def _rescue(self, gray: np.ndarray, box: np.ndarray) -> list[Found]:
        crop, origin = _crop(gray, box, TIGHT)
        if crop is None:
            return []
        steps: list[tuple[str, Callable[[], list[Found]]]] = [
            ("sharpen", lambda: self._zxing(_sharpen(crop, 2.0))),
            ("upscale", lambda: self._zxing_upscaled(crop)),
            ("second", lambda: self._second(gray, box)),
            ("sharpen_more", lambda: self._zxing(_sharpen(crop, 3.0, 2.5))),
        ]
        for name, step in steps:
            found = step()
            if found:
                self.rescued[name] += 1
                return [(text, x + origin[0], y + origin[1]) for text, x, y in found]
        return []

    def _zxing(self, crop: np.ndarray, scale: float = 1.0) -> list[Found]:
        found = self.primary.scan(crop, suspects=False).found
        return [(text, x / scale, y / scale) for text, x, y in found]

    def _zxing_upscaled(self, crop: np.ndarray) -> list[Found]:
        if max(crop.shape) >= UPSCALE_BELOW:
            return []
        big = cv2.resize(crop, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
        return self._zxing(_sharpen(big, 3.0), scale=2.0)

    def _second(self, gray: np.ndarray, box: np.ndarray) -> list[Found]:
        if self.second is None:
            return []
        crop, _origin = _crop(gray, box, WIDE)
        if crop is None:
            return []
        scale = SECOND_MAX_BOX / float(max(box[2:] - box[:2]))
        if scale < 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        # Sharpened only: on the hard set ZBar read 25 sharpened wide crops and
        # 7 raw ones, all 7 among the 25.
        texts = self.second.decode(_sharpen(crop, 2.0))
        # The second decoder's positions are not part of the Decoder protocol:
        # the box centre (relative to the tight crop's origin, which _rescue
        # adds back) is close enough for ordering.
        cx, cy = (box[:2] + box[2:]) / 2 - np.array(_crop(gray, box, TIGHT)[1])
        return [(text, float(cx), float(cy)) for text in texts]


def _sharpen(image: np.ndarray, sigma: float, amount: float = 1.5) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0)


def _regions(quads: list[np.ndarray]) -> list[np.ndarray]:
    """Bounding boxes (x0, y0, x1, y1) of overlapping suspect quads merged.

    zxing-cpp reports one failed result per finder-pattern triple it tried, so
    a single hard code often yields several partial, overlapping quads; the
    union of them is the code.  Degenerate quads (all corners at 0, 0) are
    dropped.  Largest region first, as that is the code nearest the camera.
    """
    boxes = [np.concatenate([q.min(axis=0), q.max(axis=0)]) for q in quads if np.ptp(q) > 0]
    merged: list[np.ndarray] = []
    while boxes:
        box = boxes.pop()
        for i, other in enumerate(merged):
            if _near(box, other):
                # Re-test the grown box against the rest: it may now bridge two.
                del merged[i]
                boxes.append(np.concatenate([np.minimum(box[:2], other[:2]), np.maximum(box[2:], other[2:])]))
                break
        else:
            merged.append(box)
    return sorted(merged, key=lambda b: -float((b[2] - b[0]) * (b[3] - b[1])))


def _near(a: np.ndarray, b: np.ndarray) -> bool:
    # Pieces of one code are apart by less than half a piece.
    gap = 0.5 * float(max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]))
    return bool(a[0] - gap <= b[2] and b[0] - gap <= a[2] and a[1] - gap <= b[3] and b[1] - gap <= a[3])


def _crop(gray: np.ndarray, box: np.ndarray, pad: float) -> tuple[np.ndarray | None, tuple[int, int]]:
    """The box grown on every side by `pad` of its longer side, clipped to the
    frame: partial quads can miss a third of the code, and the quiet zone
    must be in the crop for any decoder to find the code."""
    lo, hi = box[:2], box[2:]
    margin = float((hi - lo).max()) * pad + 8.0
    height, width = gray.shape
    x0, y0 = (int(v) for v in np.maximum(lo - margin, 0))
    x1, y1 = (int(v) for v in np.minimum(hi + margin, (width, height)))
    if x1 - x0 < 21 or y1 - y0 < 21:
        return None, (0, 0)
    return np.ascontiguousarray(gray[y0:y1, x0:x1]), (x0, y0)
