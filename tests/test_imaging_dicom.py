"""DICOM reading: each pixel-format variant, written with pydicom, reads back to pixels
computed independently from the raw array that was written (DICOM PS3.3 C.11 formulas)."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence

from raoutcome.errors import ImageReadError
from raoutcome.imaging import META_KEYS, read_image

RNG = np.random.default_rng(7)
IDENTIFYING = {
    "PatientName": "Doe^Jane",
    "PatientID": "PID-778899",
    "PatientBirthDate": "19610203",
    "PatientAddress": "12 Rue Secrete, Lyon",
    "InstitutionName": "Hopital Confidentiel",
    "InstitutionAddress": "1 Hospital Road",
    "OtherPatientIDs": "ALT-445566",
    "ReferringPhysicianName": "House^Gregory",
    "AccessionNumber": "ACC-123321",
    "StudyID": "STUDY-9911",
    "PatientTelephoneNumbers": "555-0199",
    "StudyDescription": "Hands of Jane Doe",
}


def make_ds(raw: np.ndarray, *, bits_allocated: int, bits_stored: int, signed: bool,
            photometric: str = "MONOCHROME2", frames: int = 1, **elements) -> Dataset:
    """A DX dataset whose Pixel Data are exactly ``raw``'s bytes (native little endian)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = uid.DigitalXRayImageStorageForPresentation
    ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = raw.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits_allocated, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    if frames > 1:
        ds.NumberOfFrames = frames
    for key, value in elements.items():
        setattr(ds, key, value)
    ds.PixelData = raw.astype(raw.dtype.newbyteorder("<")).tobytes()
    return ds


def save(ds: Dataset, path) -> str:
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def stored_values(raw: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """What the stored bits mean: high bits masked off, two's complement within BitsStored."""
    v = raw.astype(np.int64) & ((1 << bits_stored) - 1)
    if signed:
        v = np.where(v >= 1 << (bits_stored - 1), v - (1 << bits_stored), v)
    return v


def bit_range(bits_stored: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)


def linear_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR window onto [0, 1]."""
    c, w = center - 0.5, width - 1.0
    return np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 1.0, (x - c) / w + 0.5))


VARIANTS = [  # (bits allocated, bits stored, signed, photometric)
    (8, 8, False, "MONOCHROME2"),
    (8, 8, False, "MONOCHROME1"),
    (16, 12, False, "MONOCHROME2"),
    (16, 12, True, "MONOCHROME2"),
    (16, 12, False, "MONOCHROME1"),
    (16, 16, False, "MONOCHROME2"),
    (16, 16, True, "MONOCHROME1"),
]


@pytest.mark.parametrize("alloc,stored,signed,photometric", VARIANTS)
def test_native_variants_read_back_by_stored_bit_range(tmp_path, alloc, stored, signed, photometric):
    dtype = {8: np.uint8, 16: np.uint16}[alloc]
    raw = RNG.integers(0, np.iinfo(dtype).max, size=(20, 30), endpoint=True).astype(dtype)
    if stored < alloc:  # junk above HighBit (e.g. overlay bits) must be ignored
        raw[0, :5] |= np.array(0xF000, dtype=dtype)
    path = save(make_ds(raw, bits_allocated=alloc, bits_stored=stored, signed=signed,
                        photometric=photometric), tmp_path / "x.dcm")
    img = read_image(path)
    lo, hi = bit_range(stored, signed)
    expected = (stored_values(raw, stored, signed) - lo) / (hi - lo)
    if photometric == "MONOCHROME1":
        expected = 1.0 - expected
    assert img.pixels.dtype == np.float32 and img.pixels.shape == raw.shape
    np.testing.assert_allclose(img.pixels, expected, atol=1e-6)
    assert img.meta["bits_stored"] == stored and img.meta["signed"] == signed
    assert img.meta["photometric"] == photometric and img.meta["inverted"] == (photometric == "MONOCHROME1")


def test_monochrome1_bone_is_bright(tmp_path):
    """In MONOCHROME1 low stored values are white: a low-valued 'bone' must read brighter."""
    raw = np.full((8, 8), 3000, np.uint16)
    raw[2:6, 2:6] = 500  # bone: high attenuation, displayed white in MONOCHROME1
    img = read_image(save(make_ds(raw, bits_allocated=16, bits_stored=12, signed=False,
                                  photometric="MONOCHROME1"), tmp_path / "m1.dcm"))
    assert img.pixels[3, 3] > img.pixels[0, 0]


def test_negative_rescale_slope_reverses_brightness(tmp_path):
    raw = RNG.integers(0, 4095, size=(16, 16), endpoint=True).astype(np.uint16)
    slope, intercept = -0.5, 1000.0
    path = save(make_ds(raw, bits_allocated=16, bits_stored=12, signed=False,
                        RescaleSlope=slope, RescaleIntercept=intercept), tmp_path / "r.dcm")
    img = read_image(path)
    value = raw * slope + intercept
    ends = np.array([0, 4095]) * slope + intercept
    np.testing.assert_allclose(img.pixels, (value - ends.min()) / (ends.max() - ends.min()), atol=1e-6)
    assert img.meta["rescale_slope"] == slope and img.meta["rescale_intercept"] == intercept


def test_window_in_rescaled_units(tmp_path):
    """Signed CT-like data: the window (center/width) is in rescaled (Hounsfield-like) units."""
    raw = RNG.integers(-2048, 2047, size=(24, 24), endpoint=True).astype(np.int16)
    slope, intercept, center, width = 2.0, -1024.0, 300.0, 1500.0
    path = save(make_ds(raw.view(np.uint16), bits_allocated=16, bits_stored=12, signed=True,
                        RescaleSlope=slope, RescaleIntercept=intercept,
                        WindowCenter=center, WindowWidth=width), tmp_path / "w.dcm")
    img = read_image(path)
    expected = linear_window(raw * slope + intercept, center, width)
    assert 0 < (expected == 0).sum() and 0 < (expected == 1).sum()  # the window clips both ends
    np.testing.assert_allclose(img.pixels, expected, atol=1e-6)
    assert img.meta["voi"] == "window" and img.meta["window_center"] == center


def test_first_of_several_windows_and_monochrome1(tmp_path):
    raw = RNG.integers(0, 255, size=(10, 10), endpoint=True).astype(np.uint8)
    path = save(make_ds(raw, bits_allocated=8, bits_stored=8, signed=False, photometric="MONOCHROME1",
                        WindowCenter=[100, 50], WindowWidth=[80, 20]), tmp_path / "w2.dcm")
    np.testing.assert_allclose(read_image(path).pixels, 1.0 - linear_window(raw.astype(float), 100, 80),
                               atol=1e-6)


def test_voi_lut_sequence_is_applied(tmp_path):
    raw = RNG.integers(0, 1023, size=(12, 12), endpoint=True).astype(np.uint16)
    first = 100
    lut = (255 * np.sqrt(np.linspace(0, 1, 512))).astype(np.uint16)  # 512 entries, 8-bit output
    item = Dataset()
    item.LUTDescriptor = [512, first, 8]
    item.add_new("LUTData", "US", lut.tolist())
    path = save(make_ds(raw, bits_allocated=16, bits_stored=10, signed=False,
                        VOILUTSequence=Sequence([item])), tmp_path / "lut.dcm")
    img = read_image(path)
    expected = lut[np.clip(raw.astype(int) - first, 0, 511)] / 255.0
    np.testing.assert_allclose(img.pixels, expected, atol=1e-6)
    assert img.meta["voi"] == "lut"


def test_voi_lut_declared_16_bit_with_12_bit_entries_spans_0_1(tmp_path):
    raw = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new("LUTData", "US", (4095 - np.arange(4096)).tolist())  # entries 0..4095 only
    img = read_image(save(make_ds(raw, bits_allocated=16, bits_stored=12, signed=False,
                                  VOILUTSequence=Sequence([item])), tmp_path / "cr.dcm"))
    np.testing.assert_allclose(img.pixels, (4095 - raw) / 4095.0, atol=1e-6)


def _clean_16bit(stored=12) -> np.ndarray:
    return RNG.integers(0, (1 << stored) - 1, size=(32, 40), endpoint=True).astype(np.uint16)


@pytest.mark.parametrize("syntax", [uid.RLELossless, uid.JPEG2000Lossless], ids=["rle", "j2k"])
def test_lossless_compressed_syntaxes_decode_exactly(tmp_path, syntax):
    raw = _clean_16bit()
    ds = make_ds(raw, bits_allocated=16, bits_stored=12, signed=False, photometric="MONOCHROME1")
    ds.compress(syntax)
    assert ds.file_meta.TransferSyntaxUID == syntax
    img = read_image(save(ds, tmp_path / "c.dcm"))
    np.testing.assert_allclose(img.pixels, 1.0 - raw / 4095.0, atol=1e-6)
    assert img.meta["transfer_syntax_uid"] == str(syntax)


def test_jpeg_baseline_decodes_like_the_jpeg_itself(tmp_path):
    """A baseline JPEG (encoded by Pillow) encapsulated in DICOM decodes via pylibjpeg."""
    from PIL import Image

    yy, xx = np.mgrid[0:64, 0:48]
    grey = (128 + 100 * np.sin(xx / 7.0) * np.cos(yy / 9.0)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JPEG", quality=95)
    reference = np.asarray(Image.open(io.BytesIO(buf.getvalue()))).astype(float) / 255.0
    ds = make_ds(grey, bits_allocated=8, bits_stored=8, signed=False)
    ds.file_meta.TransferSyntaxUID = uid.JPEGBaseline8Bit
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    img = read_image(save(ds, tmp_path / "jpg.dcm"))
    assert np.abs(img.pixels - reference).max() <= 2 / 255  # decoders may round differently


def test_multiframe_returns_first_frame(tmp_path):
    raw = RNG.integers(0, 255, size=(3, 6, 7), endpoint=True).astype(np.uint8)
    img = read_image(save(make_ds(raw, bits_allocated=8, bits_stored=8, signed=False, frames=3),
                          tmp_path / "mf.dcm"))
    np.testing.assert_allclose(img.pixels, raw[0] / 255.0, atol=1e-6)
    assert img.meta["n_frames"] == 3 and img.meta["frame"] == 0


def test_pixel_spacing_kept_and_imager_spacing_fallback(tmp_path):
    raw = np.zeros((4, 4), np.uint8)
    a = read_image(save(make_ds(raw, bits_allocated=8, bits_stored=8, signed=False,
                                PixelSpacing=[0.1, 0.15], ImagerPixelSpacing=[0.2, 0.2]), tmp_path / "a.dcm"))
    assert a.meta["pixel_spacing_mm"] == pytest.approx((0.1, 0.15))
    assert a.meta["pixel_spacing_source"] == "PixelSpacing"
    b = read_image(save(make_ds(raw, bits_allocated=8, bits_stored=8, signed=False,
                                ImagerPixelSpacing=[0.143, 0.143]), tmp_path / "b.dcm"))
    assert b.meta["pixel_spacing_mm"] == pytest.approx((0.143, 0.143))
    assert b.meta["pixel_spacing_source"] == "ImagerPixelSpacing"
    c = read_image(save(make_ds(raw, bits_allocated=8, bits_stored=8, signed=False), tmp_path / "c.dcm"))
    assert c.meta["pixel_spacing_mm"] is None


def test_identifying_fields_never_reach_meta(tmp_path):
    raw = np.zeros((4, 4), np.uint8)
    ds = make_ds(raw, bits_allocated=8, bits_stored=8, signed=False, ViewPosition="PA",
                 ImageLaterality="L", BodyPartExamined="HAND", **IDENTIFYING)
    meta = read_image(save(ds, tmp_path / "id.dcm")).meta
    assert set(meta) <= META_KEYS
    text = repr(meta)
    for keyword, value in IDENTIFYING.items():
        assert str(value).split("^")[0] not in text, keyword
    for banned in ("patient", "name", "birth", "address", "institution", "physician", "accession", "study"):
        assert not any(banned in key.lower() for key in meta), banned
    assert meta["view_position"] == "PA" and meta["laterality"] == "L" and meta["body_part"] == "HAND"
    assert meta["modality"] == "DX"


def test_truncated_pixel_data_names_the_file(tmp_path):
    raw = _clean_16bit()
    path = tmp_path / "patient_scan_truncated.dcm"
    save(make_ds(raw, bits_allocated=16, bits_stored=12, signed=False), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 700])
    with pytest.raises(ImageReadError, match="patient_scan_truncated.dcm"):
        read_image(path)


def test_truncated_header_and_garbage_name_the_file(tmp_path):
    raw = _clean_16bit()
    path = tmp_path / "cut_header.dcm"
    save(make_ds(raw, bits_allocated=16, bits_stored=12, signed=False), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="cut_header.dcm"):
        read_image(path)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(bytes(RNG.integers(0, 255, 3000, dtype=np.uint8)))
    with pytest.raises(ImageReadError, match="junk.dcm"):
        read_image(junk)


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_truncated_compressed_data_names_the_file(tmp_path):
    ds = make_ds(_clean_16bit(), bits_allocated=16, bits_stored=12, signed=False)
    ds.compress(uid.JPEG2000Lossless)
    path = tmp_path / "cut_j2k.dcm"
    save(ds, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut_j2k.dcm"):
        read_image(path)


def test_unsupported_transfer_syntax_is_named(tmp_path):
    ds = make_ds(np.zeros((4, 4), np.uint8), bits_allocated=8, bits_stored=8, signed=False)
    ds.file_meta.TransferSyntaxUID = uid.MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "video.dcm"
    save(ds, path)
    with pytest.raises(ImageReadError, match=r"video\.dcm.*MPEG2"):
        read_image(path)


def test_missing_decoder_plugin_is_a_clear_error(tmp_path, monkeypatch):
    """As if pylibjpeg-openjpeg were not installed: the error names file and syntax."""
    from pydicom.pixels.decoders import JPEG2000LosslessDecoder

    ds = make_ds(_clean_16bit(), bits_allocated=16, bits_stored=12, signed=False)
    ds.compress(uid.JPEG2000Lossless)
    path = save(ds, tmp_path / "needs_openjpeg.dcm")
    monkeypatch.setattr(JPEG2000LosslessDecoder, "_available", {})
    with pytest.raises(ImageReadError, match=r"needs_openjpeg\.dcm.*JPEG 2000"):
        read_image(path)


def test_dicom_without_preamble_is_read(tmp_path):
    raw = RNG.integers(0, 255, size=(5, 5), endpoint=True).astype(np.uint8)
    ds = make_ds(raw, bits_allocated=8, bits_stored=8, signed=False)
    del ds.file_meta  # a bare dataset: no preamble, no file meta, no transfer syntax
    path = tmp_path / "raw.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=False, little_endian=True, implicit_vr=True)
    data = path.read_bytes()
    assert data[128:132] != b"DICM"
    np.testing.assert_allclose(read_image(path).pixels, raw / 255.0, atol=1e-6)
