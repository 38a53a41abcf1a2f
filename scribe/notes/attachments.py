"""Images attached to an encounter (PNG, JPEG, DICOM), normalised for note engines.

DICOM is windowed into an 8-bit PNG for the model; modality, body part and study date are
kept so the note can say what was attached even when nobody interprets it. The file name and those
DICOM texts are shown as the image's label, so they are clean text (`scribe.text`) or the image is refused.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scribe.config import Settings
from scribe.errors import BadInputError
from scribe.text import clean_text


@dataclass
class Attachment:
    id: str  # "image-1": what statements cite as {"attachment": id}
    filename: str
    media_type: str  # of `data`: "image/png" or "image/jpeg"
    data: bytes  # the image as a model sees it; DICOM arrives here as a windowed PNG
    width: int
    height: int
    source_format: str  # "png" | "jpeg" | "dicom"
    modality: str | None = None  # DICOM (0008,0060): "CR", "CT", "MR", "US", ...
    body_part: str | None = None  # DICOM (0018,0015)
    study_date: str | None = None  # ISO date from DICOM (0008,0020)
    description: str | None = None  # DICOM StudyDescription / SeriesDescription

    def label(self) -> str:
        """Human description for the note: "CR chest image (2024-03-02)" or the file name."""
        parts = [p for p in (self.modality, (self.body_part or "").lower() or None) if p]
        what = " ".join(parts + ["image"]) if parts else self.filename
        return f"{what} ({self.study_date})" if self.study_date else what


MAX_PIXELS = 50_000_000  # refuse decompression bombs before decoding
MAX_BYTES = Settings.model_fields["max_image_bytes"].default  # `scribe note --image`; the service: its setting
MAX_FILENAME = 255  # the longest file name an attachment keeps (the database column's size)
_DICOM_MAGIC_OFFSET = 128
_TEXT_TAGS = ("Modality", "BodyPartExamined", "StudyDescription", "SeriesDescription")  # what the note shows


def _is_dicom(raw: bytes) -> bool:
    return raw[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM"


def load_attachment(source: Path | bytes, attachment_id: str, filename: str | None = None) -> Attachment:
    """Read a PNG, JPEG or DICOM image; anything else, a damaged file, or a file name or DICOM text that is not
    clean text, is one BadInputError.

    A file is refused over `MAX_BYTES` before it is read; bytes were bounded by whoever received them.
    """
    filename = filename or (source.name if isinstance(source, Path) else attachment_id)
    clean_text(filename, "file name")  # before any message quotes it
    if len(filename) > MAX_FILENAME:
        raise BadInputError(f"file name: longer than {MAX_FILENAME} characters")
    if isinstance(source, Path):
        try:
            if source.stat().st_size > MAX_BYTES:
                raise BadInputError(f"{filename}: the image is larger than {MAX_BYTES // (1024 * 1024)} MiB")
            raw = source.read_bytes()
        except OSError as exc:
            raise BadInputError(f"cannot read image {source}: {exc.strerror or exc}") from None
    else:
        raw = source
    if not raw:
        raise BadInputError(f"{filename}: the image is empty")
    if _is_dicom(raw):
        return _from_dicom(raw, attachment_id, filename)
    return _from_picture(raw, attachment_id, filename)


def _from_picture(raw: bytes, attachment_id: str, filename: str) -> Attachment:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as probe:
            kind = probe.format
            if kind not in ("PNG", "JPEG"):
                raise BadInputError(f"{filename}: {kind or 'this'} images are not supported; use PNG, JPEG or DICOM")
            if probe.width * probe.height > MAX_PIXELS:
                raise BadInputError(f"{filename}: {probe.width}x{probe.height} pixels is over the limit")
            probe.verify()
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            width, height = image.size
    except BadInputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise BadInputError(f"{filename}: not a readable PNG, JPEG or DICOM image") from None
    media = "image/png" if kind == "PNG" else "image/jpeg"
    return Attachment(
        id=attachment_id,
        filename=filename,
        media_type=media,
        data=raw,
        width=width,
        height=height,
        source_format=kind.lower(),
    )


def _window(pixels: np.ndarray, dataset: object) -> np.ndarray:
    """Pixel values -> 0..255 with the file's window (centre/width), else the 1st-99th percentile range."""
    center = getattr(dataset, "WindowCenter", None)
    width = getattr(dataset, "WindowWidth", None)
    if center is not None and width is not None:
        center = float(center[0] if isinstance(center, Sequence) and not isinstance(center, str) else center)
        width = float(width[0] if isinstance(width, Sequence) and not isinstance(width, str) else width)
        low, high = center - width / 2, center + width / 2
    else:
        low, high = np.percentile(pixels, [1, 99])
    if high <= low:
        high = low + 1
    scaled = np.clip((pixels - low) / (high - low), 0.0, 1.0) * 255.0
    return scaled.astype(np.uint8)


def _from_dicom(raw: bytes, attachment_id: str, filename: str) -> Attachment:
    import pydicom
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about every oddity of a damaged file
            dataset = pydicom.dcmread(io.BytesIO(raw))
            pixels = dataset.pixel_array.astype(np.float64)
    except Exception as exc:  # pydicom raises many kinds for damaged or compressed-without-codec files
        raise BadInputError(f"{filename}: unreadable DICOM image ({type(exc).__name__})") from None
    if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
        pixels = pixels[pixels.shape[0] // 2]  # a multi-frame series: its middle frame
    slope = float(getattr(dataset, "RescaleSlope", 1) or 1)
    intercept = float(getattr(dataset, "RescaleIntercept", 0) or 0)
    pixels = pixels * slope + intercept
    if pixels.ndim == 2:
        image8 = _window(pixels, dataset)
        if str(getattr(dataset, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            image8 = 255 - image8  # MONOCHROME1 shows low values as white
        picture = Image.fromarray(image8, mode="L")
    else:
        picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)[..., :3], mode="RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    study_date = str(getattr(dataset, "StudyDate", "") or "")
    iso_date = (
        f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:8]}" if re.fullmatch(r"[0-9]{8}", study_date) else None
    )
    texts = {tag: str(getattr(dataset, tag, "") or "") for tag in _TEXT_TAGS}
    for tag, text in texts.items():
        clean_text(text, f"{filename}: DICOM {tag}")
    description = texts["StudyDescription"] or texts["SeriesDescription"]
    return Attachment(
        id=attachment_id,
        filename=filename,
        media_type="image/png",
        data=buffer.getvalue(),
        width=picture.width,
        height=picture.height,
        source_format="dicom",
        modality=texts["Modality"] or None,
        body_part=texts["BodyPartExamined"] or None,
        study_date=iso_date,
        description=description or None,
    )
