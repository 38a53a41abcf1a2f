"""Build a tiny MedASR-shaped checkpoint on disk: same classes and files as google/medasr, random weights.

The sentencepiece model is trained here on made-up dictation, with MedASR's formatting tokens
(`{period}`, `[FINDINGS]`...) as user-defined symbols so each is one token. Tests load the
directory through the same `MedAsrEngine.load` path a real checkpoint takes.
"""

from __future__ import annotations

import io
import random
import tempfile
from pathlib import Path

FORMATTING_TOKENS = [
    "{period}",
    "{comma}",
    "{colon}",
    "{new paragraph}",
    "{new line}",
    "{next line}",
    "{question mark}",
    "{hyphen}",
    "{open paren}",
    "{close paren}",
    "[FINDINGS]",
    "[IMPRESSION]",
]
_WORDS = (
    "the patient has no chest pain lungs are clear heart size is normal metformin lisinopril "
    "follow up in two weeks mild effusion left lower lobe stable nodule history of diabetes"
).split()


def _corpus(seed: int, lines: int = 400) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 12))]
        words.insert(rng.randint(0, len(words)), rng.choice(FORMATTING_TOKENS))
        out.append(" ".join(words))
    return out


def build_tiny_medasr(path: Path | str, *, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Save a tiny `LasrForCTC` + `LasrProcessor` (tokenizer, feature extractor) to `path`; < 10 s."""
    import sentencepiece as spm
    import torch
    from transformers import (
        LasrCTCConfig,
        LasrFeatureExtractor,
        LasrForCTC,
        LasrProcessor,
        LasrTokenizer,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model_bytes = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus(seed)),
        model_writer=model_bytes,
        model_type="unigram",
        vocab_size=120,
        hard_vocab_limit=False,
        user_defined_symbols=FORMATTING_TOKENS,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,  # LASR's layout: <pad>=0 (CTC blank), </s>=1, <unk>=2
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        minloglevel=2,
    )
    with tempfile.TemporaryDirectory() as spm_dir:
        (Path(spm_dir) / "spiece.model").write_bytes(model_bytes.getvalue())
        tokenizer = LasrTokenizer.from_pretrained(spm_dir)
    processor = LasrProcessor(feature_extractor=LasrFeatureExtractor(), tokenizer=tokenizer)

    torch.manual_seed(seed)
    config = LasrCTCConfig(
        vocab_size=len(tokenizer),
        encoder_config={
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "intermediate_size": hidden * 2,
            "subsampling_conv_channels": hidden,
            "conv_kernel_size": 8,
            "initializer_range": 0.1,  # larger than the default: frames vary, tokens too
        },
    )
    model = LasrForCTC(config).eval()
    with torch.no_grad():  # a sharper head, rarer blanks, frequent formatting tokens: output worth decoding
        model.ctc_head.weight.mul_(8.0)
        model.ctc_head.bias[tokenizer.pad_token_id] -= 8.0
        model.ctc_head.bias[tokenizer.convert_tokens_to_ids(FORMATTING_TOKENS)] += 6.0
    processor.save_pretrained(path)
    model.save_pretrained(path)
    return path
