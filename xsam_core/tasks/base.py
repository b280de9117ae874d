"""The task protocol: what a task takes, how its answer reads, and what the UI shows for it.

Every other module (predictor, render, app, CLI, evaluation, training) asks a task these questions
and never tests its name, so adding a task is one new module plus one line in `tasks/__init__.py`.
The request rules in `check_request` are the one place that accepts or refuses a request: the app,
the API and the CLI all reach them through `Predictor.predict`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PromptError, VisualPromptError
from .common import Choices, DecodeContext, TaskOutput


@dataclass(frozen=True)
class TextInput:
    """The text a task reads: the UI's field label and an example of what to type."""

    label: str
    example: str


# What a task's result is, for the modules that treat results by kind (evaluation, training, views).
TEXT, ONE_MASK, PHRASE_MASKS, SIMILAR_MASKS, CLASS_MASKS = "text", "one mask", "phrase masks", "similar masks", "classes"


class Task:
    name: str = ""  # the API's and CLI's task name
    title: str = ""  # e.g. "Referring segmentation"
    summary: str = ""  # one line: what it does
    needs: str = ""  # what the user gives, for the UI's hint
    text: TextInput | None = None  # None: the task takes no text
    regions: tuple[int, int] = (0, 0)  # visual prompts it takes: (at least, at most); (0, 0) none
    output: str = TEXT
    class_list: bool = False  # the text is a list of class names (the UI offers class presets)
    open_vocabulary: bool = False  # a plain comma-separated class list is accepted
    grounded_answer: bool = False  # the answer's <p>phrases</p> are segmented: kept in the cleaned text
    refer: bool = False  # one mask-decoder pass per phrase (the official cond_lens path)
    templates: tuple[str, ...] = ()  # the official question templates
    answers: tuple[str, ...] = ()  # the official training answers (what the model learnt to say)

    @property
    def description(self) -> str:
        return f"{self.title} — {self.summary}"

    @property
    def takes_prompts(self) -> bool:
        return self.regions[1] > 0

    @property
    def phrase_masks(self) -> bool:
        """One mask per phrase, coloured like its phrase in the answer."""
        return self.output in (ONE_MASK, PHRASE_MASKS) and not self.takes_prompts

    def prompt(self, text: str, num_regions: int, choices: Choices) -> tuple[str, dict]:
        """The human turn (with <image> / <region> placeholders) and what post-processing needs."""
        raise NotImplementedError

    def labels(self, meta: dict, phrases: list[str], region_names: list[str]) -> list[str]:
        """One name per condition of the mask decoder."""
        if self.takes_prompts:
            return [f"prompt {name}" for name in region_names]
        return phrases

    def clean(self, text: str) -> str:
        """The official demo's clean-up of an answer (its template end markers already removed)."""
        text = text.replace("<p> ", "<p>").replace("</p> ", "</p>")
        if not self.grounded_answer:
            text = text.replace("<p>", "").replace("</p>", "")
        return text.strip()

    postprocess = None  # (DecodeContext) -> TaskOutput; None: the answer is text only

    def check_regions(self, count: int) -> None:
        low, high = self.regions
        if high and not low <= count <= high:
            many = "exactly one visual prompt" if low == high == 1 else f"{low} to {high} visual prompts"
            raise PromptError(f"{self.title.lower()} takes {many} (got {count})")


@dataclass
class CheckedRequest:
    text: str
    prompts: list[dict]  # the visual-prompt items the task reads
    notes: list[str]  # what was ignored, for the result's info


NO_PROMPT = ("this task needs a visual prompt: click the object, draw a box or a scribble, or upload a mask")


def check_request(task: Task, text: str, items: list[dict]) -> CheckedRequest:
    """The rules every entry point shares. Parts a task does not read are dropped with a note; a
    prompt task without a positive visual prompt is refused."""
    notes = []
    text = text or ""
    if task.text is None and text.strip():
        notes.append(f"{task.title.lower()} reads no text: the text was ignored")
        text = ""
    if not task.takes_prompts:
        if items:
            notes.append(f"{task.title.lower()} reads no visual prompts: {len(items)} ignored")
        items = []
    elif not any(not i.get("negative") for i in items):
        raise VisualPromptError(NO_PROMPT)
    return CheckedRequest(text, items, notes)


__all__ = ["Task", "TextInput", "PromptError", "CheckedRequest", "check_request", "Choices", "DecodeContext",
           "TaskOutput", "TEXT", "ONE_MASK", "PHRASE_MASKS", "SIMILAR_MASKS", "CLASS_MASKS"]
