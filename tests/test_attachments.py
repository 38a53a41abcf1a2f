"""Attached images: PNG and JPEG as they are, DICOM windowed into PNG with its metadata, bad files refused, and the
texts shown as an image's label (its file name, DICOM tags) clean or the image refused, on the API and the CLI."""

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from scribe.cli import run
from scribe.errors import BadInputError
from scribe.notes.attachments import load_attachment
from tests.conftest import SAMPLES
from tests.helpers.clinic import DR_A, new_encounter


def picture(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format=fmt)
    return buffer.getvalue()


def dicom(tmp_path: Path, photometric: str = "MONOCHROME2", window: bool = True, **tags: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / f"{photometric}.dcm"
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality, ds.BodyPartExamined, ds.StudyDate, ds.StudyDescription = "CR", "CHEST", "20240302", "Chest PA"
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8 text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of values its VR does not allow: what a test means to send
        for tag, value in tags.items():
            setattr(ds, tag, value)
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


HOSTILE = ["\x00", "\x1b[31m", "\x9b", "\t", "\n", "\u202e", "\u2068"]


@pytest.mark.parametrize("char", HOSTILE, ids=lambda c: f"U+{ord(c[0]):04X}")
def test_a_file_name_or_dicom_text_that_is_not_clean_refuses_the_image(tmp_path, char):
    """What the note shows of an image is one line of clean text; the message names where, never echoes it."""
    with pytest.raises(BadInputError, match=rf"^file name: contains U\+{ord(char[0]):04X} ") as info:
        load_attachment(picture("PNG"), "image-1", f"wound{char}.png")
    assert char not in str(info.value)
    code_strings = ("Modality", "BodyPartExamined", "StudyDate") if char.isascii() else ()  # their VRs are ASCII
    for tag in ("StudyDescription", "SeriesDescription", *code_strings[:2]):
        path = dicom(tmp_path, **{tag: f"CH{char}EST"})
        with pytest.raises(BadInputError, match=rf"^{path.name}: DICOM {tag}: contains U\+{ord(char[0]):04X} "):
            load_attachment(path, "image-1")
    if code_strings:
        assert load_attachment(dicom(tmp_path, StudyDate=f"2024{char}302"), "image-1").study_date is None


def test_a_file_name_longer_than_an_attachment_keeps_refuses_the_image():
    """Checked where every image is read (the service's upload passes the X-Filename it was sent)."""
    assert load_attachment(picture("PNG"), "image-1", "a" * 251 + ".png").filename == "a" * 251 + ".png"
    with pytest.raises(BadInputError, match="^file name: longer than 255 characters$"):
        load_attachment(picture("PNG"), "image-1", "a" * 252 + ".png")


def _upload(api, encounter: str, raw: bytes, media: str, name: str | bytes | None = None):
    headers = {**DR_A, "Content-Type": media, **({"X-Filename": name} if name is not None else {})}
    return api.post(f"/v1/encounters/{encounter}/images", content=raw, headers=headers)


def test_image_names_and_dicom_texts_that_are_not_clean_are_refused_and_nothing_is_stored(api, tmp_path):
    encounter = new_encounter(api)
    png = picture("PNG")
    refusals = [
        (_upload(api, encounter, png, "image/png", "scan\u202egnp.exe".encode()), "file name: contains U+202E"),
        (_upload(api, encounter, png, "image/png", b"scan\x1b[2J.png"), "file name: contains U+001B"),
        (_upload(api, encounter, png, "image/png", b"scan\x85.png"), "file name: contains U+0085"),
        (
            api.post(
                f"/v1/encounters/{encounter}/images", files={"f": ("x\u2066y.png", png, "image/png")}, headers=DR_A
            ),
            "file name: contains U+2066",
        ),
        (_upload(api, encounter, png, "image/png", "a" * 252 + ".png"), "file name: longer than 255 characters"),
        (
            _upload(
                api, encounter, dicom(tmp_path, StudyDescription="Chest\u202ePA").read_bytes(), "application/dicom"
            ),
            "DICOM StudyDescription: contains U+202E",
        ),
    ]
    for response, message in refusals:
        assert response.status_code == 422 and response.json()["resourceType"] == "OperationOutcome", response.text
        assert message in response.json()["issue"][0]["diagnostics"]
    assert api.get(f"/v1/encounters/{encounter}/context", headers=DR_A).json()["images"] == []

    accepted = _upload(api, encounter, png, "image/png", "Zoë röntgen.png".encode())  # UTF-8, as the name was meant
    assert accepted.status_code == 201 and accepted.json()["label"] == "Zoë röntgen.png", accepted.text
    [image] = api.get(f"/v1/encounters/{encounter}/context", headers=DR_A).json()["images"]
    assert image["label"] == "Zoë röntgen.png"


def test_the_cli_refuses_an_image_whose_dicom_text_is_not_clean(settings, capsys, tmp_path):
    path = dicom(tmp_path, StudyDescription="Chest \u202eAP")
    code = run(["note", str(SAMPLES / "urology_asthma.txt"), "--image", str(path)])
    out, err = capsys.readouterr()
    assert code == 3 and out == "" and "DICOM StudyDescription: contains U+202E" in err and "Traceback" not in err
