"""Shapes-world dataset folders: writing and reading them, and the ``xsam shapes`` command.

Files (``python -m xsam_core shapes generate --out DIR --n N --seed S [--look L]``)
------------------------------------------------------------------------------
``DIR/images/000001.png`` ... (``.jpg`` in the ``jpeg`` look: the compressed file itself, as a user
would upload it) and ``DIR/annotations.json``, a COCO-style dict:

* ``info``: ``{"generator": "xsam_core.shapes", "version": 3, "seed": S, "n": N, "look": L}``
  (``L`` null for the plain renderer);
* ``images``: ``[{"id", "file_name" (relative to DIR), "width", "height"}]``, ids from 1;
* ``categories``: ``[{"id", "name", "isthing", "supercategory"}]``, fixed: 1 circle, 2 square,
  3 triangle, 4 star, 5 ring, 6 cross (``isthing`` 1, ``"shape"``), 7 wall, 8 floor (``isthing`` 0,
  ``"stuff"``);
* ``annotations``: ``[{"id", "image_id", "category_id", "segmentation", "area", "bbox",
  "iscrowd"}]``, one per thing and one per stuff class present in the image; ``segmentation`` is
  a pycocotools RLE ``{"size": [H, W], "counts": str}`` of the visible mask, ``area`` its pixel
  count, ``bbox`` ``[x, y, w, h]`` in integer pixels, ``iscrowd`` 0; things also carry
  ``"colour"`` and ``"size"`` (the words above). Ids are global to the file, from 1;
* ``tasks``: the requests below, ``id`` from 1, annotation ids global to the file.

Item ``i`` (0-based) of a file is ``generate_scene(rng, look=L)`` then ``make_tasks(scene, rng)`` with
``rng = numpy.random.default_rng([seed, i])``, so the same seed gives byte-identical files. In a look
that keeps the geometry (``tones``, ``texture``, ``noise``, ``blur``, ``jpeg``, ``outline``) item ``i``
holds the plain file's things and requests, drawn another way: a look's score is compared with plain's
request for request.

With ``--chat-sets`` (``info["chat_sets"]`` true) each scene's one chat question is replaced by its whole
`chat_set` (the count, "is there" for a present and an absent shape, up to two colours) drawn from
``default_rng([seed, i, CHAT_SET_STREAM])``: four to five questions a scene where one is asked otherwise,
so a chat cell of 60 scenes holds 60 counts rather than about 20, while the rng stream of the other
requests, and so every other request, stays byte for byte that of the file without it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ..masks import box_xywh, mask_box, mask_to_rle, rle_to_mask
from . import looks
from .looks import LOOKS
from .requests import chat_set, make_tasks
from .scenes import SHAPES, STUFF, Scene, generate_scene

GENERATOR = "xsam_core.shapes"
VERSION = 3  # 3: a look that keeps the geometry holds the plain scene's things and requests; 2: the jpeg
# look's images are its JPEG files (1 held their decoded pixels as PNG)
CHAT_SET_STREAM = 1  # the rng stream of --chat-sets, apart from the scene's own
CHAT_SET_SIZE = 5  # more than any scene's set holds: every question it can ask
CATEGORIES = [
    {"id": i, "name": name, "isthing": int(name in SHAPES),
     "supercategory": "shape" if name in SHAPES else "stuff"}
    for i, name in enumerate(SHAPES + STUFF, 1)
]
CATEGORY_IDS = {c["name"]: c["id"] for c in CATEGORIES}


def scene_annotations(scene: Scene, image_id: int, first_id: int = 1) -> list[dict]:
    """COCO annotations of a scene; scene-local id k becomes ``first_id - 1 + k``."""
    segments = [(t.id, t.shape, t.mask, {"colour": t.colour, "size": t.size}) for t in scene.objects]
    segments += [(i, name, scene.stuff[name], {}) for name, i in scene.stuff_ids.items()]
    return [{"id": first_id - 1 + local, "image_id": image_id, "category_id": CATEGORY_IDS[name],
             "segmentation": mask_to_rle(mask), "area": int(mask.sum()), "bbox": box_xywh(mask_box(mask)),
             "iscrowd": 0, **extra}
            for local, name, mask, extra in segments]


def _globalise(request: dict, request_id: int, id_offset: int) -> dict:
    """Renumber a request and turn its scene-local annotation ids into file-global ones."""
    out = dict(request, id=request_id)
    shift = lambda ids: [id_offset + i for i in ids]  # noqa: E731
    if "targets" in out:
        out["targets"] = shift(out["targets"])
    if "targets_per_region" in out:
        out["targets_per_region"] = [shift(ids) for ids in out["targets_per_region"]]
    if "phrases" in out:
        out["phrases"] = [dict(p, targets=shift(p["targets"])) for p in out["phrases"]]
    return out


def write_dataset(out_dir: str | Path, n: int, seed: int, look: str | None = None, chat_sets: bool = False) -> dict:
    """Write n scenes with their requests to out_dir (the format above), drawn in `look`
    (`looks.LOOKS`, None for the plain renderer), each scene's whole chat set in place of its one chat
    question if `chat_sets`; returns the dict."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations, tasks = [], [], []
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        scene = generate_scene(rng, look=look)
        image_id = index + 1
        file_name = f"images/{image_id:06d}.{'jpg' if scene.file else 'png'}"
        if scene.file:
            (out / file_name).write_bytes(scene.file)
        else:
            cv2.imwrite(str(out / file_name), scene.image[..., ::-1])  # cv2 writes BGR
        h, w = scene.image.shape[:2]
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        offset = len(annotations)
        annotations += scene_annotations(scene, image_id, offset + 1)
        requests = make_tasks(scene, rng, image_id)
        if chat_sets:
            questions = chat_set(scene, np.random.default_rng([seed, index, CHAT_SET_STREAM]), CHAT_SET_SIZE)
            requests = [dict(q, image_id=image_id) for q in questions] + [r for r in requests if r["task"] != "chat"]
        tasks += [_globalise(r, len(tasks) + k, offset) for k, r in enumerate(requests, 1)]
    info = {"generator": GENERATOR, "version": VERSION, "seed": seed, "n": n, "look": look}
    coco = {"info": info | ({"chat_sets": True} if chat_sets else {}),
            "images": images, "categories": CATEGORIES, "annotations": annotations, "tasks": tasks}
    (out / "annotations.json").write_text(json.dumps(coco))
    return coco


def load_dataset(root: str | Path) -> tuple[dict, list[dict]]:
    """The annotations.json dict of a shapes-world directory, and its task requests."""
    coco = json.loads((Path(root) / "annotations.json").read_text())
    return coco, coco["tasks"]


def dataset_image(root: str | Path, image: dict) -> np.ndarray:
    """The RGB uint8 array of an ``images`` entry of a dataset folder, decoded as the scene's own image
    was (no checks: user images go through ``inference.processing.load_image``, which a model given
    the file's path also sees, with what it tells of the file)."""
    return looks.decode((Path(root) / image["file_name"]).read_bytes())


def task_requests(roots, task: str):
    """(image, request, {annotation id: annotation of that image}) for every request of `task` in the
    dataset folders `roots`, in file order."""
    for root in roots:
        coco, requests = load_dataset(root)
        images = {im["id"]: im for im in coco["images"]}
        by_image = {}
        for a in coco["annotations"]:
            by_image.setdefault(a["image_id"], {})[a["id"]] = a
        for r in requests:
            if r["task"] == task:
                yield dataset_image(root, images[r["image_id"]]), r, by_image.get(r["image_id"], {})


def annotation_mask(annotation: dict) -> np.ndarray:
    """Bool H x W mask of an annotation."""
    return rle_to_mask(annotation["segmentation"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xsam shapes", description=sys.modules[__package__].__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write a shapes-world dataset")
    gen.add_argument("--out", required=True, help="output directory")
    gen.add_argument("--n", type=int, default=100, help="number of images")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--look", choices=LOOKS, help="draw every scene in this look (default: the plain renderer)")
    gen.add_argument("--chat-sets", action="store_true", help="ask each scene its whole chat set, not one question")
    args = parser.parse_args(argv)
    coco = write_dataset(args.out, args.n, args.seed, args.look, args.chat_sets)
    print(f"wrote {len(coco['images'])} images, {len(coco['annotations'])} annotations, "
          f"{len(coco['tasks'])} requests to {args.out}")
