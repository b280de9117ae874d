"""Subsampled JPEGs: found when decoded, their colour fitted to their brightness for the embedded model
only, and the jpeg look's dataset files kept as the JPEGs they are."""

import io

import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image

from app.views import status_line
from xsam_core import shapes
from xsam_core.inference.predictor import Predictor
from xsam_core.inference.processing import SUBSAMPLED, fit_chroma, load_image
from xsam_core.masks import union


def scene_image(seed: int = 5) -> np.ndarray:
    return shapes.generate_scene(np.random.default_rng([41, seed])).image


def encoded(image: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, kw, grid", [
    ("JPEG", {}, (2, 2, 0, 0)),  # PIL's default: 4:2:0, a colour sample per 2 x 2 pixels
    ("JPEG", {"subsampling": 1}, (1, 2, 0, 0)),  # 4:2:2: per 1 x 2
    ("JPEG", {"subsampling": 0}, None),  # 4:4:4: colour at full resolution
    ("PNG", {}, None),
    ("WEBP", {"quality": 60}, None),  # lossy, but not a JPEG: left alone
])
def test_load_image_marks_subsampled_jpegs(tmp_path, fmt, kw, grid):
    data = encoded(scene_image(), fmt, **kw)
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(data)
    for source in (data, path, str(path)):
        assert load_image(source).info.get(SUBSAMPLED) == grid


# EXIF orientation → the transpose that shows the stored image upright (as `ImageOps.exif_transpose`)
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
@pytest.mark.parametrize("subsampling", [2, 1])
def test_a_rotated_jpeg_is_fitted_on_its_own_colour_blocks(orientation, subsampling):
    """A phone photo is stored sideways with an EXIF orientation, and the colour blocks follow the stored
    image: with odd sides, a reversed axis starts with a partial block. Fitting the upright image must
    equal fitting the stored one and then turning it upright."""
    stored = scene_image(7)[:217, :263]  # odd sides
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    upright = load_image(encoded(stored, "JPEG", quality=40, subsampling=subsampling, exif=exif.tobytes()))
    turned = fit_chroma(load_image(encoded(stored, "JPEG", quality=40, subsampling=subsampling)), 3)
    expected = np.asarray(turned.transpose(UPRIGHT[orientation])).astype(int)
    off = np.abs(np.asarray(fit_chroma(upright, 3)).astype(int) - expected)
    assert off.max() <= 2 and off.mean() < 1e-3  # float rounding: a pixel or two, by a level or two
    fy, fx, y0, x0 = upright.info[SUBSAMPLED]
    if y0 or x0:  # the blocks taken from the top left instead: visibly off
        upright.info[SUBSAMPLED] = (fy, fx, 0, 0)
        assert np.abs(np.asarray(fit_chroma(upright, 3)).astype(int) - expected).mean() > 0.01  # measured 0.03-0.05


def test_a_grey_jpeg_is_not_marked():
    grey = Image.fromarray(scene_image()).convert("L")
    buf = io.BytesIO()
    grey.save(buf, "JPEG")
    assert not load_image(buf.getvalue()).info.get(SUBSAMPLED)


def test_fit_brings_colour_back_onto_the_shapes_edges():
    """On scenes saved at quality 40 with 4:2:0 colour, the fitted colour planes are closer to the drawn
    ones than the decoded planes, most of all within 2 px of the shapes' edges (measured over 20 scenes:
    14.2 → 10.1 there, 1.83 → 1.45 over the whole image, in 8-bit Cr/Cb; the fit without its rounds of
    restoring the stored block means reached 11.2 and 1.53)."""
    colour = lambda a: cv2.cvtColor(np.asarray(a), cv2.COLOR_RGB2YCrCb).astype(float)  # noqa: E731
    kernel = np.ones((5, 5), np.uint8)
    errors = []
    for seed in range(6):
        scene = shapes.generate_scene(np.random.default_rng([41, seed]))
        things = union([t.mask for t in scene.objects], scene.image.shape[:2]).astype(np.uint8)
        rim = (cv2.dilate(things, kernel) - cv2.erode(things, kernel)) > 0
        decoded = load_image(encoded(scene.image, "JPEG", quality=40))
        fitted = fit_chroma(decoded, 3)
        truth = colour(scene.image)
        off = [np.abs(colour(a) - truth) for a in (decoded, fitted)]
        errors.append([e[..., 1:][rim].mean() for e in off] + [e[..., 1:].mean() for e in off])
        # brightness stays: only rounding and colours pushed out of RGB's range move it
        assert np.abs(off[1][..., 0] - off[0][..., 0]).mean() < 0.5
    rim_decoded, rim_fitted, all_decoded, all_fitted = np.mean(errors, 0)
    assert rim_fitted < 0.75 * rim_decoded  # measured over these 6 scenes: 0.70 (0.79 without the rounds)
    assert all_fitted < all_decoded


@pytest.fixture(scope="module")
def embedded():
    return Predictor.load(None)


def test_the_embedded_model_fits_subsampled_jpegs_only(embedded, predictor, tmp_path):
    image = scene_image(6)
    assert embedded.config.chroma_fit == 3 and not predictor.config.chroma_fit  # X-SAM's own: none
    jpeg = encoded(image, "JPEG", quality=50)
    assert np.array_equal(np.asarray(embedded.view(jpeg)), np.asarray(fit_chroma(load_image(jpeg), 3)))
    assert not np.array_equal(np.asarray(embedded.view(jpeg)), np.asarray(load_image(jpeg)))
    for untouched in (encoded(image, "PNG"), encoded(image, "JPEG", quality=50, subsampling=0), image):
        assert np.array_equal(np.asarray(embedded.view(untouched)), np.asarray(load_image(untouched)))
    assert np.array_equal(np.asarray(predictor.view(jpeg)), np.asarray(load_image(jpeg)))
    # twice the largest SAM view (288 px) or more: the colour is already finer than the model's views
    photo = encoded(cv2.resize(image, (576, 400)), "JPEG", quality=50)
    assert np.array_equal(np.asarray(embedded.view(photo)), np.asarray(load_image(photo)))
    smaller = encoded(cv2.resize(image, (575, 400)), "JPEG", quality=50)
    assert not np.array_equal(np.asarray(embedded.view(smaller)), np.asarray(load_image(smaller)))
    # a request sees the fitted image, and says so: the second request on the same file is a cache hit
    pred = embedded.predict(jpeg, "refseg", "the square")
    assert pred.info["colour_fitted"] == "subsampled JPEG colour fitted to its brightness (3 px)"
    assert "Note: subsampled JPEG colour fitted to its brightness (3 px)" in status_line(pred, 1.0)
    assert "colour_fitted" not in embedded.predict(encoded(image, "PNG"), "refseg", "the square").info
    assert embedded.encode(jpeg)[1]
    assert not embedded.encode(np.asarray(load_image(jpeg)))[1]  # its pixels as an array: not fitted


def test_the_jpeg_look_writes_its_jpeg_files(tmp_path):
    coco = shapes.write_dataset(tmp_path, 3, seed=8, look="jpeg")
    for index, entry in enumerate(coco["images"]):
        scene = shapes.generate_scene(np.random.default_rng([8, index]), look="jpeg")
        path = tmp_path / entry["file_name"]
        assert path.suffix == ".jpg" and path.read_bytes() == scene.file
        assert np.array_equal(shapes.dataset_image(tmp_path, entry), scene.image)
        assert np.array_equal(np.asarray(load_image(path)), scene.image)  # what a model given the path sees
        assert load_image(path).info[SUBSAMPLED]
    plain = shapes.write_dataset(tmp_path / "plain", 1, seed=8)
    assert plain["images"][0]["file_name"].endswith(".png")


def test_the_page_hands_the_model_the_uploaded_jpeg_itself(tmp_path):
    """The page's image inputs (type filepath, no mode conversion) pass the uploaded file on as it is, so
    the model reads its subsampling; a re-encoded copy would hide it or add a second compression."""
    from gradio.data_classes import ImageData

    from app.image_input import image_input

    upload = tmp_path / "upload.jpg"
    upload.write_bytes(encoded(scene_image(), "JPEG", quality=50))
    path = image_input(type="filepath", image_mode=None).preprocess(ImageData(path=str(upload), orig_name="photo.jpg"))
    assert open(path, "rb").read() == upload.read_bytes()
    assert load_image(path).info[SUBSAMPLED]
