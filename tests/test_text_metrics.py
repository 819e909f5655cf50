"""Caption and QA metrics on hand-computed cases; METEOR is reported as absent (not 0) without Java."""

import pytest

from tinyvid.eval import text_metrics
from tinyvid.eval.text_metrics import caption_metrics, normalize_answer, qa_metrics, slot_metrics, token_f1, tokenize

A = "the digit 3 is moving left and the digit 7 is moving up"
B = "the digit 7 is moving up and the digit 3 is moving left"  # the same clip, parts swapped


def test_identical_captions_score_one():
    scores = caption_metrics([A], [A], meteor=text_metrics.java_available())
    assert scores["bleu4"] == pytest.approx(1.0, abs=1e-6)
    assert scores["rouge_l"] == 1.0
    if text_metrics.java_available():
        assert scores["meteor"] == pytest.approx(1.0, abs=1e-6)


def test_swapped_parts_by_hand():
    scores = caption_metrics([B], [A], meteor=False)
    # n-gram precisions 13/13, 11/12, 9/11, 6/10; same length, so no brevity penalty
    assert scores["bleu4"] == pytest.approx((11 / 12 * 9 / 11 * 6 / 10) ** 0.25, abs=1e-6)
    # longest common subsequence "the digit is moving and the digit is moving": 9 of 13 tokens each way
    assert scores["rouge_l"] == pytest.approx(9 / 13, abs=1e-9)
    assert "meteor" not in scores
    # with both orders as references the swapped caption is simply right
    assert caption_metrics([B], [[A, B]], meteor=False)["bleu4"] == pytest.approx(1.0, abs=1e-6)


def test_cider_of_exact_captions_over_a_set_is_ten():
    captions = [A, "the digit 1 is moving down", "the digit 5 is moving up-right"]
    assert caption_metrics(captions, captions, meteor=False)["cider"] == pytest.approx(10.0, abs=1e-6)


@pytest.mark.skipif(not text_metrics.java_available(), reason="METEOR needs Java, which this machine lacks")
def test_meteor_runs_on_java():
    scores = caption_metrics([B, "the digit 1 is moving down"], [A, "the digit 1 is moving down"])
    assert 0.0 < scores["meteor"] < 1.0


def test_meteor_is_skipped_loudly_without_java(monkeypatch):
    monkeypatch.setattr(text_metrics.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="METEOR skipped"):
        scores = caption_metrics([A], [A])
    assert "meteor" not in scores and set(scores) == {"bleu4", "rouge_l", "cider"}


@pytest.mark.skipif(not text_metrics.java_available(), reason="PTBTokenizer needs Java, which this machine lacks")
def test_tokenize_matches_coco_ptb_tokenizer():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    texts = ["The digit 3 is moving up-left.", "which digits are in the video?", "yes", "3 and 7"]
    ptb = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    assert [tokenize(t) for t in texts] == [ptb[i][0] for i in range(len(texts))]


def test_qa_exact_match_and_f1_squad_style():
    assert normalize_answer("The 3 and 7.") == "3 and 7"
    assert normalize_answer(" Up-Left ") == "up-left"
    assert token_f1("3 and 7", "3") == pytest.approx(0.5)  # precision 1/3, recall 1
    assert token_f1("7 and 3", "3 and 7") == 1.0  # a bag of words
    scores = qa_metrics(["The 3 and 7.", "yes", "2"], ["3 and 7", ["no", "nope"], "1"])
    assert scores == {"exact_match": pytest.approx(1 / 3), "f1": pytest.approx(1 / 3)}


def test_slot_accuracy_by_hand():
    predictions = [A, "the digit 7 is moving up", "not a caption", "the digit 3 is moving up and the digit 7 is moving left"]
    references = [B, A, A, A]
    scores = slot_metrics(predictions, references)
    # slots right: 2+1+0+2 digits and 2+1+0+0 directions of 8 reference slots; only the first is exact
    assert scores == {"exact": 0.25, "digit": 5 / 8, "direction": 3 / 8, "parsed": 0.75}


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="reference sets"):
        caption_metrics([A, B], [A], meteor=False)
    with pytest.raises(TypeError, match="list of predictions"):
        caption_metrics(A, [A], meteor=False)
    with pytest.raises(ValueError, match="no predictions"):
        qa_metrics([], [])
    with pytest.raises(ValueError, match="references"):
        slot_metrics([A], [A, B])
