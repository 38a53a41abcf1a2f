"""Attached images: PNG and JPEG as they are, DICOM windowed into PNG with its metadata, bad files refused."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from scribe.errors import BadInputError
from scribe.notes.attachments import load_attachment


def picture(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format=fmt)
    return buffer.getvalue()


def dicom(tmp_path: Path, photometric: str = "MONOCHROME2", window: bool = True) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / f"{photometric}.dcm"
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality, ds.BodyPartExamined, ds.StudyDate, ds.StudyDescription = "CR", "CHEST", "20240302", "Chest PA"
    ds.PhotometricInterpretation, ds.SamplesPerPixel = photometric, 1
    ds.Rows, ds.Columns = 32, 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if window:
        ds.WindowCenter, ds.WindowWidth = 1000, 1000
    ramp = np.tile(np.linspace(0, 4000, 64, dtype=np.uint16), (32, 1))
    ds.PixelData = ramp.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


@pytest.mark.parametrize("fmt, media", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_pictures_are_kept_as_they_are(fmt, media):
    raw = picture(fmt)
    attachment = load_attachment(raw, "image-1", "photo")
    assert (attachment.media_type, attachment.width, attachment.height) == (media, 40, 30)
    assert attachment.data == raw and attachment.source_format == fmt.lower()
    assert attachment.label() == "photo"


def test_dicom_is_windowed_to_png_with_its_metadata(tmp_path):
    attachment = load_attachment(dicom(tmp_path), "image-2")
    assert attachment.media_type == "image/png" and attachment.source_format == "dicom"
    assert (attachment.modality, attachment.body_part, attachment.study_date) == ("CR", "CHEST", "2024-03-02")
    assert attachment.description == "Chest PA"
    assert attachment.label() == "CR chest image (2024-03-02)"
    pixels = np.asarray(Image.open(io.BytesIO(attachment.data)))
    assert pixels.shape == (32, 64)
    assert pixels[0, 0] == 0 and pixels[0, -1] == 255  # 0 is below the window, 4000 above it
    middle = pixels[0, 16]  # ~1016 raw: inside the window 500..1500, so a grey level
    assert 0 < middle < 255


def test_monochrome1_is_inverted_and_percentile_window_without_tags(tmp_path):
    inverted = np.asarray(Image.open(io.BytesIO(load_attachment(dicom(tmp_path, "MONOCHROME1"), "i").data)))
    assert inverted[0, 0] == 255 and inverted[0, -1] == 0
    plain = np.asarray(Image.open(io.BytesIO(load_attachment(dicom(tmp_path, window=False), "i").data)))
    assert plain[0, 0] == 0 and plain[0, -1] == 255 and 0 < plain[0, 32] < 255


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "not a readable"),
        (b"this is a text file pretending to be an image", "not a readable"),
        (b"\0" * 128 + b"DICM" + b"\x02\x00garbage", "unreadable DICOM"),
    ],
)
def test_bad_images_are_refused(raw, message):
    with pytest.raises(BadInputError, match=message):
        load_attachment(raw, "image-1", "scan.dcm")


def test_truncated_png_and_unsupported_format(tmp_path):
    with pytest.raises(BadInputError, match="not a readable"):
        load_attachment(picture("PNG")[:60], "image-1")
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    with pytest.raises(BadInputError, match="GIF images are not supported"):
        load_attachment(gif.getvalue(), "image-1")
    with pytest.raises(BadInputError, match="cannot read image"):
        load_attachment(tmp_path / "missing.png", "image-1")
