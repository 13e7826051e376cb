"""The auxiliary span loss's targets (eval/train_verifier.span_target) with the packaged model's tokenizer."""

from eval.train_verifier import base_model_dir, span_target
from rag.encoding.verifier import pair_ids, plain_tokenizer


def test_the_target_covers_the_answer_pieces_cls_for_a_non_answer_and_none_when_the_answer_is_absent():
    tokenizer = plain_tokenizer(base_model_dir())
    question, window = "When was the treaty signed?", "The treaty was signed in Paris in 1763 by Britain."
    start, end = span_target(tokenizer, question, window, 1, ("Paris in 1763",))
    ids = pair_ids(tokenizer, question, [window])[0][0]
    assert tokenizer.decode(ids[start : end + 1].tolist()) == "paris in 1763"
    assert span_target(tokenizer, question, window, 0, ("Paris in 1763",)) == (0, 0)
    assert span_target(tokenizer, question, window, 1, ("Madrid",)) == (-100, -100)
