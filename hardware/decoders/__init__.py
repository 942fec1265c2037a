"""QR decoders: one interface (`Decoder`), one file per backend, a fake."""

from __future__ import annotations

from typing import Any

from hardware.decoders.base import Decoder
from hardware.decoders.fake import FakeDecoder
from hardware.exc import UnknownBackend

__all__ = ["DECODER_KINDS", "Decoder", "FakeDecoder", "open_decoder"]

#: Names accepted by `open_decoder` (and the gate config's decoder kind).
DECODER_KINDS = ("pipeline", "zxing", "zbar", "opencv", "fake")


def open_decoder(kind: str = "pipeline", **options: Any) -> Decoder:
    """Build the decoder named `kind`, passing `options` to its constructor.

    The backend's library is imported here, not before, so a gate that uses
    zxing-cpp never needs ZBar installed.  A missing library raises
    `BackendUnavailable`, an unknown kind `UnknownBackend`; neither is ever
    replaced by another backend.  For "pipeline", ``second`` names the rescue
    decoder: "zbar" (default), "opencv" or "none", and ``invert_every`` how
    often light-on-dark codes are looked for (every 2nd frame; 0 = never).
    """
    if kind == "pipeline":
        from hardware.decoders.pipeline import PipelineDecoder

        second_kind = options.pop("second", "zbar")
        invert_every = options.pop("invert_every", 2)
        second = None if second_kind == "none" else open_decoder(second_kind)
        return PipelineDecoder(_zxing(**options), second, invert_every=invert_every)
    if kind == "zxing":
        return _zxing(**options)
    if kind == "zbar":
        from hardware.decoders.zbar import ZbarDecoder

        return ZbarDecoder(**options)
    if kind == "opencv":
        from hardware.decoders.opencv import OpencvDecoder

        return OpencvDecoder(**options)
    if kind == "fake":
        return FakeDecoder(**options)
    raise UnknownBackend(f"unknown decoder kind {kind!r}: use one of {', '.join(DECODER_KINDS)}")


def _zxing(**options: Any) -> Any:
    from hardware.decoders.zxing import ZxingDecoder

    return ZxingDecoder(**options)
