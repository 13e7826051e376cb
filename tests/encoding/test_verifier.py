"""The shipped verifier (rag.encoding.verifier): it loads, refuses altered weights, reads an obvious answer above an
obvious miss, and its int8 file keeps the fp32 export's logits on held-out pairs recorded by the training script."""

import shutil

import numpy as np
import pytest

from rag.encoding import verifier as verifiers
from rag.encoding.model import resolve_model
from rag.errors import ModelError

SPEC = resolve_model("default")


@pytest.fixture(scope="module")
def shipped():
    return verifiers.shipped(str(SPEC.local_dir), SPEC.weights_sha256)


def test_the_card_records_the_shipped_file_and_its_base_model(shipped):
    card = shipped.card
    assert card.sha256 == verifiers.file_sha256(verifiers.ASSET_DIR / card.file)
    assert card.base_model_sha256 == SPEC.weights_sha256
    assert (verifiers.ASSET_DIR / card.file).stat().st_size <= 25 * 1024 * 1024
    assert card.layers >= 1 and card.training.get("seed") is not None


def test_an_obvious_answer_scores_above_an_obvious_miss(shipped):
    question = "In what year did the Normans conquer England?"
    logits = shipped.logits(question, [
        "The Norman conquest of England took place in 1066, when William defeated Harold at Hastings.",
        "Steam engines turn the heat of burning coal into mechanical work.",
    ])
    assert logits.shape == (2,)
    assert logits[0] > logits[1]  # (the margin is small: the shipped model is weak, docs/quality.md)
    ninety = shipped.logits("How long is the security training module?", [
        "New staff complete the security training module, which takes roughly ninety minutes.",
        "The cafeteria opens at eight in the morning.",
    ])
    assert ninety[0] > ninety[1]


def test_int8_keeps_the_fp32_logits_of_held_out_pairs(shipped):
    pairs = shipped.card.check_pairs
    assert len(pairs) >= 16
    int8 = np.array([shipped.logits(p["question"], [p["window"]])[0] for p in pairs])
    fp32 = np.array([p["logit_fp32"] for p in pairs])
    assert np.max(np.abs(int8 - fp32)) < 0.75
    assert np.corrcoef(int8, fp32)[0, 1] > 0.97


def test_altered_weights_are_refused(tmp_path):
    copy = tmp_path / "verifier"
    shutil.copytree(verifiers.ASSET_DIR, copy)
    card = verifiers.Card.read(copy / verifiers.CARD_NAME)
    weights = copy / card.file
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        verifiers.Verifier(copy, SPEC.local_dir, SPEC.weights_sha256)


def test_a_missing_or_unreadable_card_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="card"):
        verifiers.Verifier(tmp_path, SPEC.local_dir, SPEC.weights_sha256)
    (tmp_path / verifiers.CARD_NAME).write_text("{not json")
    with pytest.raises(ModelError, match="card"):
        verifiers.Verifier(tmp_path, SPEC.local_dir, SPEC.weights_sha256)


def test_a_verifier_trained_for_another_tokenizer_is_refused():
    with pytest.raises(ModelError, match="tokenizer"):
        verifiers.Verifier(verifiers.ASSET_DIR, SPEC.local_dir, "0" * 64)


def test_only_the_default_model_gets_the_verifier():
    other = verifiers.for_model(type(SPEC)("some/other-model", "some/other-model", None, None), True)
    assert other[0] is None and other[1]["used"] is False and other[1]["on_request"] is False and "default model" in other[1]["reason"]
    off, status = verifiers.for_model(SPEC, False)  # on request: loaded by the first question that asks
    assert off is not None and status["used"] is False and status["on_request"] is True and "RAG_VERIFIER=false" in status["reason"]
    used, status = verifiers.for_model(SPEC, True)
    assert status["used"] is True and status["sha256"] == used.get()[0].card.sha256


def test_the_manifest_entry_names_the_shipped_card_or_why_there_is_none(tmp_path, monkeypatch):
    card = verifiers.Card.read(verifiers.ASSET_DIR / verifiers.CARD_NAME)
    entry = verifiers.manifest_entry(SPEC)
    assert entry == {"available": True, "sha256": card.sha256, "layers": card.layers, "file": card.file,
                     "read_when": "RAG_VERIFIER=true, or a question's verify=true"}
    other = verifiers.manifest_entry(type(SPEC)("some/other-model", "some/other-model", None, None))
    assert other["available"] is False and "default model" in other["reason"] and "bi-encoder" in other["reason"]
    (tmp_path / verifiers.CARD_NAME).write_text("{not json")
    monkeypatch.setattr(verifiers, "ASSET_DIR", tmp_path)
    broken = verifiers.manifest_entry(SPEC)
    assert broken["available"] is False and "cannot be read" in broken["reason"]


def test_a_long_question_is_said_to_be_cut(shipped):
    assert shipped.reads_whole("When did the Normans conquer England?")
    assert not shipped.reads_whole("why " * (verifiers.QUESTION_PIECES + 5))


def test_pair_ids_mark_the_window_as_the_second_segment(shipped):
    ids, mask, types = verifiers.pair_ids(shipped.tokenizer, "who won?", ["Harold lost.", "William won at Hastings in 1066."])
    assert ids.shape == mask.shape == types.shape and ids.shape[0] == 2
    cls_id, sep_id = shipped.tokenizer.token_to_id("[CLS]"), shipped.tokenizer.token_to_id("[SEP]")
    for row in range(2):
        length = int(mask[row].sum())
        assert ids[row, 0] == cls_id and ids[row, length - 1] == sep_id
        first_sep = list(ids[row]).index(sep_id)
        assert types[row, : first_sep + 1].sum() == 0 and types[row, first_sep + 1 : length].all()
        assert not types[row, length:].any()


def test_one_thread_or_one_per_core_reads_the_same_logits(shipped):
    """RAG_VERIFIER_THREADS changes how the forward is spread over the cores, not what it computes."""
    from rag.encoding.onnx_encoder import default_threads

    one = verifiers.shipped(str(SPEC.local_dir), SPEC.weights_sha256, 1)
    per_core = verifiers.shipped(str(SPEC.local_dir), SPEC.weights_sha256, 0)
    assert per_core is verifiers.shipped(str(SPEC.local_dir), SPEC.weights_sha256, default_threads())  # one load
    assert (one is per_core) == (default_threads() == 1)
    windows = [p["window"] for p in shipped.card.check_pairs[:6]]
    question = shipped.card.check_pairs[0]["question"]
    assert np.allclose(one.logits(question, windows), shipped.logits(question, windows), atol=1e-3)
