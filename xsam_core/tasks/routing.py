"""Auto: which task a request is for, by rules a person can read (X-SAM issue 22: "How to run the
demo without specifying a task name?").

`route(text, prompts)` looks at the text and the visual prompts and returns a `Route`: the task that
should run, the text that task reads (e.g. "segment the red circle" → referring segmentation of
"the red circle") and the reason, one short sentence shown to the user ("ran as: … — reason").

The rules below run in order and the first that matches decides. Each is a few lines with a
comment; the test table in tests/test_routing.py lists requests and the task each must reach.
Summary:

 1. visual prompts: several regions, or one with "all like this" wording → visual-grounded;
    one region → interactive
 2. `ins: …; sem: …` → generic segmentation (text unchanged)
 3. no text → grounded caption
 4. "describe … with masks", "grounded caption" → grounded caption
 5. "segment / find / show / highlight / where is …" → what follows decides: everything → grounded
    caption, "all X and Y" or a list of names → open-vocabulary, an object it does not name
    ("something to sit on") → reasoning, else → referring with the phrase after the verb
 6. questions and "tell / describe / count …": attributes, counts, existence → chat; "which …",
    "what could …", "what holds …", "why …" about no named object → reasoning; other questions → chat
 7. a plain comma-separated list of names → open-vocabulary segmentation
 8. a phrase whose head noun names no object ("the shape with three corners") → reasoning
 9. any other phrase → referring segmentation

"Auto" is not a task of the registry: `Predictor.predict(..., task="auto")` routes, runs the chosen
task and records `info["ran_as"]`; the page shows `AUTO_TASK` in its task list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..inference.visual_prompts import parse_prompts, region_name
from . import TASKS, get_task
from .base import Task, TextInput

AUTO = "auto"


@dataclass(frozen=True)
class Route:
    task: str  # a name in TASKS
    text: str  # what that task reads
    reason: str  # why, for the user: "a class list in the ins:/sem: form"

    @property
    def title(self) -> str:
        return TASKS[self.task].title

    def info(self) -> dict:
        """What a prediction records as `info["ran_as"]`."""
        return {"task": self.task, "title": self.title, "reason": self.reason, "text": self.text}


class Auto(Task):
    """What the page and the CLI show for Auto. Not in TASKS: it never builds a prompt."""

    name = AUTO
    title = "Auto"
    summary = "picks the task from what you type or click"
    needs = ("anything: a phrase (“the red circle”), a question, a class list (“ins: circle; sem: wall”) "
             "or a click on the image; nothing gives a grounded caption. The result says which task ran.")
    text = TextInput("Text: a phrase, a question or class names (optional)", "segment the red circle")
    regions = (0, 64)
    class_list = True  # the class presets give `ins: …; sem: …` lists, routed to generic segmentation


AUTO_TASK = Auto()


def spec(name: str) -> Task:
    """A registered task, or Auto (for the page and the CLI, which list it first)."""
    return AUTO_TASK if name == AUTO else get_task(name)


# --- words the rules use ---------------------------------------------------------------------------

# Head nouns that name no object: a phrase built on them describes what it wants instead.
GENERIC = {"thing", "things", "object", "objects", "shape", "shapes", "item", "items", "one", "ones",
           "something", "anything", "stuff", "part", "parts", "region", "regions", "area", "areas", "whatever",
           "someone", "somebody", "somewhere"}
# Words that end a noun phrase's head: relative clauses, prepositions, pronoun subjects.
AFTER_HEAD = {"that", "which", "who", "whose", "where", "when", "with", "without", "to", "for", "used", "you", "i",
              "we", "they", "people", "left", "right", "above", "below", "near", "next", "behind", "under", "on",
              "in", "at", "of", "between", "from", "by", "like", "than", "beside", "over", "inside", "outside",
              "is", "are", "can", "could", "would", "might", "should"}
# A word after "what can/could …" or "why is …" that names the thing asked about.
NAMED = r"(?:the|a|an|this|that|these|those|it|its|they|their|his|her|my|your|our|there)\b"
MODAL = r"(?:can|could|would|might|should|may|will)"
POLITE = re.compile(r"^(?:(?:please|kindly|hey|ok|okay|now)\b[\s,]*|(?:can|could|would|will)\s+you\s+(?:please\s+)?"
                    r"|i\s+(?:want|need|would\s+like)\s+(?:you\s+)?to\s+|help\s+me\s+(?:to\s+)?|let'?s\s+)", re.I)
TRAILING = re.compile(r"(?:\s*,?\s*\b(?:please|for\s+me)\b)?\s*[.?!]*\s*$", re.I)
IN_IMAGE = re.compile(r"\s+(?:in|on|from|of)\s+(?:this|the)\s+(?:image|picture|photo|photograph|scene)$", re.I)
VERB = re.compile(r"^(?:segment|find|locate|show(?:\s+me)?|highlight|mask|outline|detect|select|mark|"
                  r"pick\s+out|point\s+(?:to|at|out)|where\s+(?:is|are)|where's|wheres)\s+(.+)$")
EVERYTHING = re.compile(r"^(?:everything|all|it\s+all|all\s+of\s+it|(?:all|every|each)\s+(?:the\s+)?objects?"
                        r"|(?:the\s+)?(?:whole\s+|entire\s+)?(?:image|picture|photo|scene))$")
ALL_OF = re.compile(r"^(?:all|every|each)\s+(?:of\s+)?(?:the\s+)?(.+)$")
SIMILAR = re.compile(r"\b(?:all|every|each|other|others|similar|same|alike|such|like\s+(?:this|these|that|it|them)|"
                     r"more\s+of)\b")
GROUNDED = re.compile(r"\bgrounded\s+caption|\b(?:describe|caption|description|explain|summari[sz]e|tell)\b.*"
                      r"\b(?:masks?|segment\w*|grounded|ground)\b")
QUESTION_WORD = re.compile(r"^(?:what|what's|whats|which|who|whom|whose|when|where|why|how|is|are|was|were|am|"
                           r"do|does|did|has|have|had|can|could|would|will|should|may|might|shall|isn't|aren't|"
                           r"doesn't|don't)\b")
TELL = re.compile(r"^(?:tell|describe|explain|count|list|name|caption|summari[sz]e)\b")
ATTRIBUTE = re.compile(r"^(?:what|which)\s+(?:colou?rs?|sizes?|kinds?|types?|numbers?|shades?|materials?|times?|"
                       r"letters?|words?|brands?|shape\s+(?:is|are|does|do))\b")
YOU_SEE = re.compile(rf"^what\s+(?:{MODAL}|do|does|did)\s+you\s+(?:see|tell|say|notice|spot|find|count|describe|"
                     r"make\s+out)\b")
ARTICLE = re.compile(r"^(?:the|a|an|some|any)\s+")
NAME = re.compile(r"^[a-z][a-z' -]*$")
NOT_A_NAME = {"left", "right", "above", "below", "near", "next", "behind", "under", "on", "in", "at", "between",
              "with", "that", "which", "who", "to", "is", "are", "it", "this", "these", "those", "there"}


def route(text: str | None, prompts=None) -> Route:
    """The task a request is for, the text it reads and why. `prompts`: the visual-prompt items (a
    list of dicts or their JSON)."""
    raw = (text or "").strip()
    regions = _regions(prompts)
    # 1. Visual prompts decide first: a click or a box is an explicit pointer at an object.
    if len(regions) > 1:
        return Route("vgdseg", "", f"{len(regions)} visual prompts: every object like them")
    if regions and SIMILAR.search(raw.lower()):
        return Route("vgdseg", "", "one visual prompt and “all like this” wording")
    if regions:
        return Route("intseg", "", "one visual prompt" + (" (the text is not read)" if raw else ""))
    # 2. The X-SAM class-list syntax, kept as typed (genseg reads both parts).
    if re.search(r"\b(?:ins|sem)\s*:", raw, re.IGNORECASE):
        return Route("genseg", raw, "a class list in the ins:/sem: form")
    # 3. Nothing to read: describe the whole image, each phrase with its mask.
    if not raw:
        return Route("gcgseg", "", "no text and no visual prompt: a caption whose phrases are segmented")
    lower = _polite(raw.lower())
    # 4. Asked for a description with masks.
    if GROUNDED.search(lower):
        return Route("gcgseg", "", "a request to describe the image with masks")
    # 5. "segment / find / show / where is …": the rest says what to segment.
    verb = VERB.match(_trim(lower))
    if verb:
        return _segment_request(_trim(verb.group(1)), _trim(_polite(raw)))
    # 6. Questions (and "tell me / describe / count …") go to chat, unless their answer is an object.
    if raw.endswith("?") or QUESTION_WORD.match(lower) or TELL.match(lower):
        return _question(lower, raw)
    phrase = _trim(_polite(raw))
    # 7. A plain list of names: masks for each of them.
    names = _class_names(phrase.lower())
    if names and len(names) > 1:
        return Route("ovseg", ", ".join(names), "a plain list of class names")
    # 8. A phrase built on "shape", "thing", "object" … describes an object without naming it.
    if _names_no_object(phrase.lower()):
        return Route("reaseg", phrase, "a phrase that describes an object without naming it")
    # 9. Anything else is a referring expression.
    return Route("refseg", phrase, "a phrase that names an object")


def _segment_request(rest: str, original: str) -> Route:
    """Rule 5: what follows "segment / find / show / where is"."""
    rest = re.sub(r"^where\s+(.+?)\s+(?:is|are)$", r"\1", rest)  # "show me where the star is"
    if EVERYTHING.match(rest):
        return Route("gcgseg", "", "“segment everything” names no class: a caption whose phrases are segmented")
    if re.match(r"^(?:what|which|who|how|why)\b", rest):  # "show me what could hold water": the question decides
        return _question(rest, _case_of(original, rest) + "?")
    every = ALL_OF.match(rest)
    names = _class_names(every.group(1), split_and=True) if every else _class_names(rest)
    if names and (every or len(names) > 1):
        return Route("ovseg", ", ".join(names), "a request for all objects of the classes it names")
    phrase = _case_of(original, rest)
    if _names_no_object(rest):
        return Route("reaseg", phrase, "a request for an object it describes but does not name")
    return Route("refseg", phrase, "a “segment / find / where is …” request that names an object")


def _question(lower: str, typed: str) -> Route:
    """Rule 6: chat answers in words; reasoning segments the object that answers."""
    lower = _trim(lower)
    # Attributes, counts, existence and what the model sees: answered in words.
    if TELL.match(lower):
        return Route("chat", typed, "a request to describe, count or list: answered in words")
    if ATTRIBUTE.match(lower) or YOU_SEE.match(lower):
        return Route("chat", typed, "a question about the image")
    # "which circle is largest?", "which object would roll away?": the answer is an object.
    if lower.startswith("which "):
        return Route("reaseg", typed, "a “which …” question: its answer is an object")
    # "what could hold water?", "where can I sit?" (not "what can the cross be used for?").
    if re.match(rf"^(?:what|where)\s+{MODAL}\s+(?!{NAMED})", lower):
        return Route("reaseg", typed, "a “what could / where can …” question: its answer is an object")
    # "what object is round?", "what carries people into space?", "what is used to cut paper?"
    if re.match(r"^what\s+(?:objects?|things?|items?|ones?|parts?)\b", lower) or _what_does(lower):
        return Route("reaseg", typed, "a question whose answer is an object it does not name")
    whatis = re.match(r"^(?:what|where)\s+(?:is|are|'s)\s+(.+)$", lower) or re.match(r"^what's\s+(.+)$", lower)
    if whatis and (_names_no_object(whatis.group(1)) or re.match(r"(?:used|good|meant)\s+(?:to|for)\b",
                                                                  whatis.group(1))):
        return Route("reaseg", typed, "a question whose answer is an object it does not name")
    # "why would someone need an umbrella here?" (not "why is the circle red?").
    if re.match(r"^why\b", lower) and not re.match(rf"^why\s+(?:is|are|was|were|does|do|did|has|have|{MODAL})\s+"
                                                    rf"{NAMED}", lower):
        return Route("reaseg", typed, "a “why …” question about no named object")
    return Route("chat", typed, "a question about the image")


def _what_does(lower: str) -> bool:
    """"what holds water?": "what" is the subject of a verb, so the answer is a thing."""
    m = re.match(r"^what\s+([a-z]+)\b", lower)
    return bool(m) and m.group(1).endswith("s") and m.group(1) not in {
        "is", "was", "does", "has", "colours", "colors", "sizes", "kinds", "types", "shapes", "objects", "things",
        "items", "ones", "parts", "numbers", "this", "its", "happens"}


def _names_no_object(phrase: str) -> bool:
    """True when the phrase's head noun is generic ("the shape with three corners", "something to sit
    on") or it is a wh-clause: it describes an object without naming it."""
    words = [w.strip(",.;:!?") for w in phrase.split()]
    if not words:
        return False
    if words[0] in {"what", "which", "whatever", "whichever"} | GENERIC:
        return True
    head = []
    for w in words:
        if w in AFTER_HEAD:
            break
        head.append(w)
    return bool(head) and head[-1] in GENERIC


def _class_names(text: str, split_and: bool = False) -> list[str] | None:
    """"star, circle and wall" → ["star", "circle", "wall"]; None unless every part is a short name.
    Parts joined by "and" alone stay one phrase ("the box between the circle and the star") unless
    `split_and` ("all circles and squares")."""
    if "," not in text and ";" not in text and not split_and:
        return None
    parts = re.split(r"\s*[,;]\s*|\s+(?:and|&|or)\s+", text)
    names = [ARTICLE.sub("", p.strip()) for p in parts if p.strip() and p.strip() not in ("and", "or")]
    names = [re.sub(r"^(?:and|or)\s+", "", n) for n in names]
    ok = names and all(NAME.match(n) and len(n.split()) <= 3 and not set(n.split()) & NOT_A_NAME for n in names)
    return names if ok else None


def _regions(prompts) -> list[str]:
    """The names of the positive visual-prompt regions, in order (negative points are not regions)."""
    return list(dict.fromkeys(region_name(p) for p in parse_prompts(prompts) if not p.get("negative")))


def _polite(text: str) -> str:
    """Without "please", "can you", "I want you to" … in front."""
    while True:
        shorter = POLITE.sub("", text, count=1).lstrip()
        if shorter == text:
            return text
        text = shorter


def _trim(text: str) -> str:
    """Without "please" / "for me" / final punctuation and "in the image" at the end."""
    return IN_IMAGE.sub("", TRAILING.sub("", text.strip()))


def _case_of(original: str, lower_tail: str) -> str:
    """The tail of `original` that `lower_tail` is the lower-cased copy of (keeps what the user typed)."""
    at = original.lower().rfind(lower_tail)
    return original[at:at + len(lower_tail)] if at >= 0 else lower_tail


__all__ = ["AUTO", "AUTO_TASK", "Route", "route", "spec"]
