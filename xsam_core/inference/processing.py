"""Images in: decoding every image mode safely, and the two X-SAM preprocessors (spec §5)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from ..errors import ImageError

MAX_PIXELS = 40_000_000  # beyond this a request is refused: it would take minutes and gigabytes
# `load_image` marks an image decoded from a JPEG that stores its colour at reduced resolution (4:2:0 or
# 4:2:2, PIL's and most cameras' default) with this key in its `info`, holding the colour's block grid
# in the upright image, (fy, fx, y0, x0): block height and width, and where the first whole block starts.
SUBSAMPLED = "xsam_chroma_subsampled"
# `JpegImagePlugin.get_sampling`'s layouts: 1 = 4:2:2 (colour at half width), 2 = 4:2:0 (half width and
# height), as (rows, columns) of pixels per stored colour sample.
SAMPLING_BLOCKS = {1: (1, 2), 2: (2, 2)}
# The fit's regulariser, for planes in [0, 1]: only brightness steps under about 0.003 (1 of 255) count
# as flat, so nearly every edge that survives in the brightness carries the colour with it.
CHROMA_EPS = 1e-5
# Rounds of fitting, then restoring each block's mean to what the file stored (held-out JPEG scenes: the
# colour error within 2 px of the shapes' edges 11.0 with the fit alone, 10.2 after one round, 9.9
# after three, no better after six; analysis §48).
CHROMA_ROUNDS = 3
# ... and `fit_chroma` marks its output with this key, holding the radius, so a result can say so.
COLOUR_FITTED = "xsam_colour_fitted"


def load_image(src, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Any image source (path, bytes, PIL, HxW[xC] array) → an RGB PIL image, upright per EXIF.

    Transparent images are composited on white; 16-bit and float images are scaled to 8 bits. A JPEG
    with subsampled colour comes back with `info[SUBSAMPLED]` set.
    """
    try:
        if isinstance(src, Image.Image):
            img = src
        elif isinstance(src, np.ndarray):
            img = Image.fromarray(_to_uint8(src))
        elif isinstance(src, (bytes, bytearray)):
            img = Image.open(io.BytesIO(src))
        elif isinstance(src, (str, Path)):
            img = Image.open(src)
        else:
            raise ImageError(f"unsupported image input of type {type(src).__name__}")
        w, h = img.size
        if w == 0 or h == 0:
            raise ImageError("the image is empty (zero width or height)")
        if w * h > max_pixels:
            raise ImageError(f"the image has {w}×{h} = {w * h / 1e6:.0f} MP; the limit is {max_pixels / 1e6:.0f} MP")
        img.load()
        grid = _colour_blocks(img) if img.format == "JPEG" else None
        img = _to_rgb(ImageOps.exif_transpose(img))
        if grid:
            img.info[SUBSAMPLED] = grid
        return img
    except FileNotFoundError as e:
        raise ImageError(f"no such image file: {src}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(f"cannot read the image: {e}") from e


def load_for_model(src, chroma_fit: int, sam_processor: dict) -> Image.Image:
    """`load_image`, then, for a model whose config sets `chroma_fit` (the embedded model's), a subsampled
    JPEG's colour fitted to its brightness within that many pixels. Only a file (path or bytes) or an
    image `load_image` returned still tells how it was stored: an array is taken as it is.

    An image at least twice the side of the model's largest SAM view is left alone: its half-resolution
    colour is then as fine as anything the model sees, and the fit would cost seconds on a photo."""
    img = load_image(src)
    if not (chroma_fit and img.info.get(SUBSAMPLED)):
        return img
    view = max(max(canvas) for canvas in sam_canvases(sam_processor))
    return fit_chroma(img, chroma_fit) if max(img.size) < 2 * view else img


def fit_chroma(img: Image.Image, radius: int) -> Image.Image:
    """A subsampled JPEG as `load_image` marks it, with its colour planes (YCrCb's Cr and Cb) fitted to
    its brightness by a guided filter (He et al., 2010; OpenCV contrib, as the mask snap of
    `tasks/edges.py`) of this radius in pixels.

    The file keeps brightness at full resolution but colour as one mean per block of pixels, so every
    colour edge is smeared over a block; the fit moves it back onto the brightness edge it belongs to.
    Each round then puts back what the fit moved between blocks (iterative back-projection, as in
    super-resolution: every block's mean is again the stored one), so the next fit starts closer."""
    grid = img.info[SUBSAMPLED]
    ycc = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2YCrCb).astype(np.float32) / 255  # RGB, as loaded
    colour = np.ascontiguousarray(ycc[..., 1:])
    stored = _block_means(colour, grid)
    fit = cv2.ximgproc.createGuidedFilter(np.ascontiguousarray(ycc[..., 0]), radius, CHROMA_EPS)
    for _ in range(CHROMA_ROUNDS):
        colour = fit.filter(colour)
        colour = colour + _spread(stored - _block_means(colour, grid), grid, colour.shape[:2])
    ycc[..., 1:] = fit.filter(colour)
    rgb = cv2.cvtColor(np.clip(ycc * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)
    fitted = Image.fromarray(rgb)
    fitted.info[COLOUR_FITTED] = radius
    return fitted


def _colour_blocks(jpeg: Image.Image) -> tuple[int, int, int, int] | None:
    """A JPEG's colour block grid (fy, fx, y0, x0) once its EXIF orientation is applied, or None when
    its colour is at full resolution. Blocks start at the stored image's top left; an orientation that
    reverses an axis moves a partial block to the start of it."""
    block = SAMPLING_BLOCKS.get(JpegImagePlugin.get_sampling(jpeg))
    if block is None:
        return None
    orientation = jpeg.getexif().get(ExifTags.Base.Orientation, 1)
    (fy, fx), (h, w) = block, (jpeg.height, jpeg.width)
    if orientation in (5, 6, 7, 8):  # the axes swap
        fy, fx, h, w = fx, fy, w, h
    y0 = h % fy if orientation in (3, 4, 7, 8) else 0  # rows reversed
    x0 = w % fx if orientation in (2, 3, 6, 7) else 0  # columns reversed
    return fy, fx, y0, x0


def _block_means(planes: np.ndarray, grid: tuple) -> np.ndarray:
    """[h, w, C] → each colour block's mean, as the JPEG encoder takes it (edges repeated to fill a block)."""
    fy, fx, y0, x0 = grid
    h, w = planes.shape[:2]
    rows, cols = -(-(h + y0) // fy), -(-(w + x0) // fx)
    padded = cv2.copyMakeBorder(planes, y0, rows * fy - h - y0, x0, cols * fx - w - x0, cv2.BORDER_REPLICATE)
    return cv2.resize(padded, (cols, rows), interpolation=cv2.INTER_AREA)  # whole blocks: their exact means


def _spread(blocks: np.ndarray, grid: tuple, shape: tuple) -> np.ndarray:
    """Block values back onto the pixels, bilinear between block centres (libjpeg's upsampling)."""
    fy, fx, y0, x0 = grid
    rows, cols = blocks.shape[:2]
    up = cv2.resize(blocks, (cols * fx, rows * fy), interpolation=cv2.INTER_LINEAR)
    return up[y0:y0 + shape[0], x0:x0 + shape[1]]


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float64)
    lo, hi = np.nanmin(a), np.nanmax(a)
    return ((a - lo) / (hi - lo if hi > lo else 1) * 255).round().astype(np.uint8)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(img))).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def _normalise(arr: np.ndarray, mean, std) -> torch.Tensor:
    x = torch.from_numpy(np.array(arr)).float().permute(2, 0, 1) * (1 / 255)
    mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return ((x - mean) / std)[None]


def siglip_pixels(img: Image.Image, proc: dict) -> torch.Tensor:
    """Expand to a square filled with the mean colour (image centred), resize, normalise."""
    if proc.get("expand_to_square", True):
        w, h = img.size
        side = max(w, h)
        fill = tuple(int(255 * m) for m in proc["mean"])
        canvas = Image.new("RGB", (side, side), fill)
        canvas.paste(img, ((side - w) // 2, (side - h) // 2))
        img = canvas
    size = proc["size"]
    arr = np.asarray(img.resize((size, size), resample=proc["resample"]))
    return _normalise(arr, proc["mean"], proc["std"])


def sam_canvases(proc: dict) -> list[tuple[int, int]]:
    """Every (H, W) canvas of SAM's input: X-SAM's square of side `longest_edge`, then the embedded
    model's `canvases`, each either way up."""
    longest = proc["longest_edge"]
    return [(longest, longest)] + [c for H, W in proc.get("canvases", []) for c in ((H, W), (W, H))]


def sam_view(h: int, w: int, proc: dict) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where an h x w image goes on SAM's input: ((h, w) scaled, (H, W) of the zero-padded canvas).

    X-SAM's view is a square of side `longest_edge`. The embedded model may list other `canvases`
    ((H, W) pixels, each also used transposed): an image then takes the canvas that enlarges it most,
    the smaller one on a tie, so a 3.5:1 image fills 224 x 64 rather than a third of 128 x 128."""
    canvas = max(sam_canvases(proc), key=lambda c: (min(c[0] / h, c[1] / w), -c[0] * c[1]))
    scale = min(canvas[0] / h, canvas[1] / w)
    scaled = (min(int(h * scale + 0.5), canvas[0]), min(int(w * scale + 0.5), canvas[1]))
    return scaled, canvas


def sam_pixels(img: Image.Image, proc: dict) -> tuple[torch.Tensor, tuple[int, int]]:
    """Resize into the canvas of `sam_view` (the longest side to `longest_edge` in X-SAM's square),
    normalise, zero-pad bottom/right. Returns [1, 3, H, W] and the scaled (h, w)."""
    (h, w), canvas = sam_view(img.height, img.width, proc)
    arr = np.asarray(img.resize((w, h), resample=proc["resample"]))
    x = _normalise(arr, proc["mean"], proc["std"])
    out = torch.zeros(1, 3, *canvas)
    out[:, :, :h, :w] = x
    return out, (h, w)


def sam_mask(mask: np.ndarray, scaled: tuple[int, int], canvas: int | tuple[int, int]) -> torch.Tensor:
    """A 0/1 mask at original size → nearest-resized onto the padded SAM canvas (int64); `canvas` is
    its side (a square) or (H, W)."""
    h, w = scaled
    small = Image.fromarray(mask.astype(np.uint8)).resize((w, h), resample=Image.NEAREST)
    out = torch.zeros(canvas_shape(canvas), dtype=torch.int64)
    out[:h, :w] = torch.from_numpy(np.asarray(small).astype(np.int64))
    return out


def canvas_shape(canvas: int | tuple[int, int]) -> tuple[int, int]:
    """A canvas given as its side (a square) or as (H, W) → (H, W)."""
    return (canvas, canvas) if isinstance(canvas, int) else tuple(canvas)
