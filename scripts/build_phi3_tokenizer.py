"""Build a stand-in for microsoft/Phi-3-mini-4k-instruct's tokenizer from Llama-2's vocabulary.

Phi-3-mini's tokenizer is Llama-2's SentencePiece BPE (32000 pieces, byte fallback, `▁` metaspace) plus
11 added tokens at ids 32000-32010. No model hub is reachable here, but the npm package
`llama-tokenizer-js` (1.2.2) embeds Llama-2's vocabulary and BPE merges (taken by its author from the
Llama tokenizer.json, in order) as two base64 constants in `llama-tokenizer.js`. This script reads them,
checks the file's SHA-256 and a few known Llama-2 encodings, and writes a transformers tokenizer folder
(tokenizer.json, tokenizer_config.json, special_tokens_map.json) in the layout Phi-3 ships.

    python scripts/build_phi3_tokenizer.py                      # npm pack into a temp dir, then build
    python scripts/build_phi3_tokenizer.py --source pkg.tgz     # or the .tgz / llama-tokenizer.js at hand
    python scripts/build_phi3_tokenizer.py --out some/folder

What is recalled rather than read from Phi-3's own files (none can be fetched here): the normalizer /
decoder layout (Llama-2's "legacy" fast layout: Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer,
decoder Replace/ByteFallback/Fuse/Strip), the added tokens' flags (rstrip=True on every added token except
<|endoftext|>, all special, none normalized), and the tokenizer_config.json values (LlamaTokenizer,
legacy false, add_bos_token false, eos/pad <|endoftext|>, model_max_length 4096, the chat template).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "llama-tokenizer-js"
VERSION = "1.2.2"
# SHA-256 of package/llama-tokenizer.js inside llama-tokenizer-js-1.2.2.tgz (the tarball's own SHA-1,
# as the npm registry lists it, is 4db5d5f0120e772fb46162ddc7b119f8d2044f4e).
JS_SHA256 = "34a7b9f7579d40486444590c37cba6564ef40c3dd98ecdfc2f7c886ae72c898d"

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "phi3-tokenizer"

# Phi-3-mini-4k-instruct's added tokens (ids 32000-32010) and whether they strip whitespace on the right.
PHI3_ADDED = [
    ("<|endoftext|>", False),
    ("<|assistant|>", True),
    ("<|placeholder1|>", True),
    ("<|placeholder2|>", True),
    ("<|placeholder3|>", True),
    ("<|placeholder4|>", True),
    ("<|system|>", True),
    ("<|end|>", True),
    ("<|placeholder5|>", True),
    ("<|placeholder6|>", True),
    ("<|user|>", True),
]

# Llama-2 encodings the vocabulary must reproduce (shared with tests/test_phi3_tokenizer.py).
KNOWN = json.loads((DEFAULT_OUT.parent / "llama2-encodings.json").read_text())["encodings"]

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)


def read_js(source: Path | None) -> bytes:
    """The bytes of llama-tokenizer.js: from a .js file, a package .tgz, or `npm pack` (the default)."""
    if source is None:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
            return read_js(next(Path(tmp).glob("*.tgz")))
    if source.suffix == ".js":
        return source.read_bytes()
    with tarfile.open(source) as tar:
        return tar.extractfile("package/llama-tokenizer.js").read()


def vocab_and_merges(js: bytes) -> tuple[list[str], list[tuple[str, str]]]:
    digest = hashlib.sha256(js).hexdigest()
    if digest != JS_SHA256:
        raise SystemExit(f"llama-tokenizer.js has SHA-256 {digest}, expected {JS_SHA256} ({PACKAGE} {VERSION})")
    text = js.decode("utf-8")

    def const(name):
        return base64.b64decode(re.search(rf'const {name} = "([A-Za-z0-9+/=]+)"', text).group(1))

    vocab = const("llama_vocab_base64").decode("utf-8").split("\n")
    raw = const("llama_merges_binary")
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [(vocab[a], vocab[b]) for a, b in zip(ids[0::2], ids[1::2])]
    if len(vocab) != 32000 or len(set(vocab)) != 32000:
        raise SystemExit(f"expected 32000 distinct pieces, got {len(vocab)}")
    return vocab, merges


def build(vocab, merges):
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    tok = Tokenizer(BPE(vocab={p: i for i, p in enumerate(vocab)}, merges=merges, unk_token="<unk>",
                        fuse_unk=True, byte_fallback=True, dropout=None))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    tok.add_special_tokens([AddedToken(t, rstrip=r, lstrip=False, single_word=False, normalized=False, special=True)
                            for t, r in PHI3_ADDED])
    for i, (t, _) in enumerate(PHI3_ADDED):
        assert tok.token_to_id(t) == 32000 + i, t
    return tok


def check(tok):
    for text, want in KNOWN.items():
        got = [1] + tok.encode(text, add_special_tokens=False).ids
        if got != want:
            raise SystemExit(f"{text!r}: got {got}, Llama-2 gives {want}")
        if tok.decode(got[1:]) != text:
            raise SystemExit(f"{text!r} does not round-trip: {tok.decode(got[1:])!r}")


def configs(tok) -> tuple[dict, dict]:
    decoder = {}
    for t in ("<unk>", "<s>", "</s>", *[t for t, _ in PHI3_ADDED]):
        rstrip = dict(PHI3_ADDED).get(t, False)
        decoder[str(tok.token_to_id(t))] = dict(content=t, lstrip=False, normalized=False, rstrip=rstrip,
                                                single_word=False, special=True)
    config = {
        "add_bos_token": False,
        "add_eos_token": False,
        "added_tokens_decoder": decoder,
        "bos_token": "<s>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "legacy": False,
        "model_max_length": 4096,
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    special = {
        "bos_token": {"content": "<s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "eos_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False},
        "pad_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False},
        "unk_token": {"content": "<unk>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
    }
    return config, special


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, help=f"{PACKAGE}-{VERSION}.tgz or its llama-tokenizer.js "
                                                "(default: npm pack it into a temp dir)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    vocab, merges = vocab_and_merges(read_js(args.source))
    tok = build(vocab, merges)
    check(tok)
    config, special = configs(tok)
    args.out.mkdir(parents=True, exist_ok=True)
    tok.save(str(args.out / "tokenizer.json"), pretty=False)  # compact: ~1.6 MB instead of ~3.5 MB
    for name, obj in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
        (args.out / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"{args.out}: {tok.get_vocab_size()} tokens ({len(merges)} merges), {size / 2**20:.2f} MiB "
          f"(from {PACKAGE} {VERSION}, llama-tokenizer.js sha256 {JS_SHA256})")


if __name__ == "__main__":
    main()
