"""Shapes world: synthetic scenes and per-task requests with exact ground truth.

The embedded model's data, in three modules: `scenes` (the random layout and pixel-exact drawing of
one image, with its masks), `requests` (one request per task on a scene, visual prompts included)
and `dataset` (the COCO-style folders written from them, and the ``xsam shapes`` command). Each
module's docstring specifies its part; everything below is importable from ``xsam_core.shapes``.
"""

from .dataset import (
    CATEGORIES,
    CATEGORY_IDS,
    CHAT_SET_SIZE,
    CHAT_SET_STREAM,
    GENERATOR,
    VERSION,
    annotation_mask,
    dataset_image,
    load_dataset,
    main,
    scene_annotations,
    task_requests,
    write_dataset,
)
from .looks import LOOKS, random_look
from .requests import (
    CHAT_FORMS,
    EXTREMES,
    GENSEG_MODES,
    NUMBER_WORDS,
    PROMPT_KINDS,
    RELATIONS,
    SHAPE_RIDDLES,
    absent_refseg,
    chat_kind,
    chat_set,
    is_chat_form,
    make_tasks,
    shape_counts,
    task_key,
    visual_prompt,
)
from .scenes import (
    COLOURS,
    IMAGE_SIDE,
    MAX_THINGS,
    MIN_PIXELS,
    MIN_VISIBLE_FRACTION,
    SAME_PIXEL_LOOKS,
    SHAPES,
    SIZES,
    STUFF,
    Scene,
    Thing,
    draw_shape,
    generate_scene,
    redraw_scene,
)

__all__ = [
    # scenes
    "SHAPES", "STUFF", "COLOURS", "SIZES", "IMAGE_SIDE", "MAX_THINGS", "MIN_PIXELS", "MIN_VISIBLE_FRACTION",
    "Thing", "Scene", "draw_shape", "generate_scene", "redraw_scene", "SAME_PIXEL_LOOKS",
    # looks
    "LOOKS", "random_look",
    # requests
    "GENSEG_MODES", "PROMPT_KINDS", "NUMBER_WORDS", "RELATIONS", "EXTREMES", "SHAPE_RIDDLES",
    "CHAT_FORMS", "absent_refseg", "visual_prompt", "chat_kind", "chat_set", "shape_counts", "is_chat_form",
    "make_tasks", "task_key",
    # dataset folders
    "GENERATOR", "VERSION", "CHAT_SET_STREAM", "CHAT_SET_SIZE", "CATEGORIES", "CATEGORY_IDS", "scene_annotations",
    "write_dataset", "load_dataset", "dataset_image", "task_requests", "annotation_mask", "main",
]
