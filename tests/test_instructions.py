"""Instruction data: questions and answers from the clips' labels, the chat format, label masking, tokenizer."""

import pytest
import torch

from tinyvid.data.instructions import (
    IGNORE,
    KINDS,
    VIDEO,
    answer_labels,
    build_tokenizer,
    canonical_caption,
    caption_references,
    clip_pairs,
    encode_examples,
    encode_prompts,
    grammar_texts,
    instruction_examples,
    tokenizer_from_json,
)
from tinyvid.data.moving_mnist import DIRECTIONS, generate


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def clips():
    return generate(200, "train", seed=3)


def test_examples_are_deterministic_in_the_seed(clips):
    a = instruction_examples(clips, per_clip=2, seed=1)
    assert a == instruction_examples(clips, per_clip=2, seed=1)
    assert a != instruction_examples(clips, per_clip=2, seed=2)
    assert len(a) == 400 and [e.clip for e in a[:4]] == [0, 0, 1, 1]
    assert {e.kind for e in a} == set(KINDS)


def test_answers_follow_from_the_clip_labels(clips):
    for e in instruction_examples(clips, per_clip=3, seed=0):
        pairs = clip_pairs(clips.digits[e.clip], clips.directions[e.clip])
        digits = [d for d, _ in pairs]
        if e.kind == "caption":
            assert e.answer == canonical_caption(clips.captions[e.clip])
        elif e.kind == "direction":
            digit = int(e.question.split("digit ")[1].split()[0])
            assert digit in digits
            assert e.answer == " and ".join(DIRECTIONS[k] for k in sorted({k for d, k in pairs if d == digit}))
        elif e.kind == "digits":
            assert e.answer == " and ".join(map(str, sorted(digits)))
        elif e.kind == "moving":
            direction = e.question.removeprefix("is any digit moving ").removesuffix("?")
            assert e.answer == ("yes" if DIRECTIONS.index(direction) in {k for _, k in pairs} else "no")
        elif e.kind == "count":
            assert e.answer == str(len(pairs))


def test_yes_and_no_are_balanced(clips):
    answers = [e.answer for e in instruction_examples(clips, kinds="moving", per_clip=5, seed=0)]
    assert 0.4 < answers.count("yes") / len(answers) < 0.6


def test_captions_have_a_canonical_order_and_every_order_is_a_reference():
    caption = "the digit 7 is moving up and the digit 3 is moving left"
    assert canonical_caption(caption) == "the digit 3 is moving left and the digit 7 is moving up"
    assert caption_references(caption) == ["the digit 3 is moving left and the digit 7 is moving up", caption]
    assert caption_references("the digit 1 is moving down") == ["the digit 1 is moving down"]


def test_tokenizer_covers_the_grammar_and_keeps_the_placeholder_whole(tok):
    unk = tok.unk_token_id
    for text in grammar_texts():
        assert unk not in tok.encode(text, add_special_tokens=False), text
    assert tok.convert_ids_to_tokens(tok.encode(f"{VIDEO} is any digit moving up-left?", add_special_tokens=False)) == \
        [VIDEO, "is", "any", "digit", "moving", "up-left", "?"]
    again = tokenizer_from_json(tok.backend_tokenizer.to_str())
    assert again.get_vocab() == tok.get_vocab() and again.video_token_id == tok.video_token_id


def test_labels_are_masked_on_everything_but_the_answer(tok, clips):
    examples = instruction_examples(clips, per_clip=1, seed=0)[:16]
    enc = encode_examples(tok, examples, num_visual_tokens=5)
    ids, mask, labels = enc["input_ids"], enc["attention_mask"], enc["labels"]
    assert ids.shape == mask.shape == labels.shape and enc["clip"].tolist() == [e.clip for e in examples]
    for row, e in enumerate(examples):
        assert (ids[row] == tok.video_token_id).sum() == 5
        learned = labels[row][labels[row] != IGNORE]
        assert tok.decode(learned[:-1]) == e.answer and learned[-1] == tok.eos_token_id
        assert (labels[row][mask[row] == 0] == IGNORE).all()
        prompt = tok.decode(ids[row][mask[row].bool()][: -len(learned)], skip_special_tokens=True)
        assert prompt == f"question : {e.question.replace('?', ' ?').replace('.', ' .')} answer :"


def test_answer_labels_on_a_hand_made_batch():
    ids = torch.tensor([[1, 5, 6, 7, 2, 0], [1, 5, 7, 2, 0, 0]])
    mask = (ids != 0).long()
    labels = answer_labels(ids, mask, torch.tensor([3, 2]))
    assert labels.tolist() == [[-100, -100, -100, 7, 2, -100], [-100, -100, 7, 2, -100, -100]]


def test_text_pretraining_puts_the_caption_where_the_video_goes(tok, clips):
    examples = instruction_examples(clips, kinds="digits")[:2]
    contexts = [canonical_caption(clips.captions[e.clip]) for e in examples]
    enc = encode_examples(tok, examples, 0, train_on="all", contexts=contexts)
    text = tok.decode(enc["input_ids"][0], skip_special_tokens=True)
    assert text.startswith(contexts[0] + " question :")
    assert (enc["labels"][0, 1:][enc["attention_mask"][0, 1:].bool()] != IGNORE).all()  # every token but <bos>


def test_prompts_are_left_padded_and_end_where_the_answer_starts(tok):
    ids, mask = encode_prompts(tok, ["describe the video.", "is any digit moving up?"], num_visual_tokens=3)
    assert mask[0, 0] == 0 and mask[1].all()
    answer_id = tok.convert_tokens_to_ids(":")
    assert (ids[:, -1] == answer_id).all() and (ids == tok.video_token_id).sum(1).tolist() == [3, 3]


def test_bad_requests_raise(tok, clips):
    with pytest.raises(ValueError, match="unknown question kinds"):
        instruction_examples(clips, kinds=("colour",))
    with pytest.raises(ValueError, match="per_clip"):
        instruction_examples(clips, per_clip=0)
    examples = instruction_examples(clips)[:2]
    with pytest.raises(ValueError, match="max_len"):
        encode_examples(tok, examples, 16, max_len=8)
    with pytest.raises(ValueError, match="contexts"):
        encode_examples(tok, examples, 0, contexts=["the digit 1 is moving up"])
    with pytest.raises(ValueError, match="train_on"):
        encode_examples(tok, examples, 0, train_on="prompt")
