"""Text metrics for captions and answers: the COCO caption metrics, SQuAD-style QA scores, caption slots.

- `caption_metrics`: BLEU-4, METEOR, ROUGE-L and CIDEr(-D) with the COCO caption evaluation code
  (`pycocoevalcap`, the implementation papers report). METEOR runs a Java program; where Java is
  missing it is skipped, with a warning, and left out of the result (never reported as 0).
- `qa_metrics`: exact match and token F1 after SQuAD's normalisation (lowercase, no punctuation,
  no articles, single spaces).
- `slot_metrics`: what n-gram metrics miss on the course's grammar: are the digits right, are
  their directions right, is the whole caption right (in any order of its parts)?
"""

from __future__ import annotations

import re
import shutil
import string
import warnings
from collections import Counter
from itertools import permutations

from tinyvid.data.moving_mnist import parse_caption

_PUNCTUATION = re.compile(r"([?.,!:;\"'()])")


def tokenize(text: str) -> str:
    """Lowercase words, punctuation removed: what COCO's PTBTokenizer makes of the course's texts
    (it keeps hyphenated words such as `up-left` whole and drops punctuation tokens), in Python,
    so BLEU, ROUGE-L and CIDEr do not need Java."""
    return " ".join(w for w in _PUNCTUATION.sub(r" \1 ", text.lower()).split() if not _PUNCTUATION.fullmatch(w))


def java_available() -> bool:
    return shutil.which("java") is not None


def _as_references(references, n: int) -> list[list[str]]:
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    if len(refs) != n:
        raise ValueError(f"{n} predictions but {len(refs)} reference sets")
    if any(not r for r in refs):
        raise ValueError("every prediction needs at least one reference")
    return refs


def caption_metrics(predictions: list[str], references, meteor: bool = True) -> dict[str, float]:
    """Corpus BLEU-4, METEOR (when Java runs), ROUGE-L and CIDEr of predictions against references.

    `references[i]` is one string or a list of strings, all correct for clip i (e.g.
    `instructions.caption_references`). CIDEr's idf comes from the references themselves, so it is
    only meaningful over a set of clips, not a single pair.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if isinstance(predictions, str):
        raise TypeError("caption_metrics takes a list of predictions, not a single string")
    refs = _as_references(references, len(predictions))
    if not predictions:
        raise ValueError("no predictions to score")
    gts = {i: [tokenize(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [tokenize(p)] for i, p in enumerate(predictions)}
    scores = {"bleu4": Bleu(4).compute_score(gts, res, verbose=0)[0][3]}
    if meteor:
        value = meteor_score(gts, res)
        if value is not None:
            scores["meteor"] = value
    scores["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    scores["cider"] = float(Cider().compute_score(gts, res)[0])
    return {k: float(v) for k, v in scores.items()}


def meteor_score(gts: dict, res: dict) -> float | None:
    """COCO's METEOR 1.5 on tokenised texts, or None (with a warning saying so) where Java is missing."""
    if not java_available():
        warnings.warn("METEOR skipped: it runs on Java and no `java` is on the PATH "
                      "(install a JRE, e.g. `apt-get install default-jre`); the result has no 'meteor'", stacklevel=3)
        return None
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        return float(scorer.compute_score(gts, res)[0])
    finally:
        del scorer  # its __del__ ends the Java process


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, punctuation and articles removed, whitespace collapsed."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation) - {"-"})
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bags of words) after normalisation."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def qa_metrics(predictions: list[str], references) -> dict[str, float]:
    """Mean exact match and token F1; with several references per question the best one counts."""
    refs = _as_references(references, len(predictions))
    if not predictions:
        raise ValueError("no predictions to score")
    em = [max(float(normalize_answer(p) == normalize_answer(r)) for r in rs) for p, rs in zip(predictions, refs)]
    f1 = [max(token_f1(p, r) for r in rs) for p, rs in zip(predictions, refs)]
    return {"exact_match": sum(em) / len(em), "f1": sum(f1) / len(f1)}


def _parse(caption: str) -> list[tuple[int, int]] | None:
    try:
        return parse_caption(caption)
    except ValueError:
        return None


def _slot_hits(pred: list[tuple[int, int]], ref: list[tuple[int, int]]) -> tuple[int, int]:
    """(digit hits, direction hits) over the reference slots, under the pairing of predicted with
    reference slots that gets the most slots fully right, then the most digits, then directions."""
    best = (0, 0, 0)
    for order in permutations(list(pred) + [None] * len(ref), len(ref)):
        pairs = [(p, r) for p, r in zip(order, ref) if p is not None]
        best = max(best, (sum(p == r for p, r in pairs), sum(p[0] == r[0] for p, r in pairs),
                          sum(p[1] == r[1] for p, r in pairs)))
    return best[1], best[2]


def slot_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Caption accuracy read through the grammar (`parse_caption`):

    exact: the predicted (digit, direction) pairs equal the reference's, in any order;
    digit / direction: the fraction of reference slots whose digit / direction is predicted
    (slots paired up as well as possible; a missing slot is wrong);
    parsed: the fraction of predictions that are grammatical captions (the rest score 0).
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    exact = parsed = digits = directions = slots = 0
    for prediction, reference in zip(predictions, references):
        ref = parse_caption(reference)
        pred = _parse(prediction)
        slots += len(ref)
        if pred is None:
            continue
        parsed += 1
        exact += sorted(pred) == sorted(ref)
        d, k = _slot_hits(pred, ref)
        digits, directions = digits + d, directions + k
    n = len(predictions)
    return {"exact": exact / n, "digit": digits / slots, "direction": directions / slots, "parsed": parsed / n}
