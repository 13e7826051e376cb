"""One forward pass per question: the sentence vector and the word pieces the verdict pools (rag.encoding.torch_encoder).

The masked question of the verdict (rag.query.verdict.masked_vector) is pooled from the question's own word-piece
vectors instead of a second forward pass. These tests hold the encoders to that contract: pooling every piece
gives back the sentence vector, spans point into the question, a batch gives what single calls give, and an
encoder without word pieces still gets a verdict (it embeds the masked text)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.query import verdict as V
from rag.encoding.base import Encoder, QuestionEmbedding
from rag.index.lexical import LexicalIndex
from rag.query.retrieval import Retriever

QUESTIONS = ["When did Fidel Castro die?", "Why could the Russian bourgeoisie not lead its own revolution?"]


@pytest.fixture(scope="module")
def terms_of():
    return LexicalIndex(["a tiny corpus", "of two passages"]).terms


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module", params=["query", "reference"])
def any_encoder(request, encoders):
    return encoders.query() if request.param == "query" else encoders.reference()


def test_pooling_every_word_piece_gives_the_sentence_vector(any_encoder):
    for question in QUESTIONS:
        e = any_encoder.embed_question(question)
        assert e.tokens is not None and e.tokens.shape == (len(e.spans), e.vector.shape[0])
        assert float(unit(e.tokens.mean(axis=0)) @ e.vector) > 0.9999
        assert e.spans[0] == (0, 0) and e.spans[-1] == (0, 0)  # [CLS] ... [SEP]
        inner = e.spans[1:-1]
        assert all(0 <= a < b <= len(question) for a, b in inner) and list(inner) == sorted(inner)
        assert "".join(question[a:b] for a, b in inner).lower() == "".join(question.split()).lower().replace("?", "") + "?"


def test_the_query_path_is_one_batched_forward_pass(encoders):
    inner = encoders.query().inner
    both = inner.embed_questions(QUESTIONS)  # padded to the longer one
    for question, batched in zip(QUESTIONS, both):
        alone = inner.embed_questions([question])[0]
        assert batched.spans == alone.spans
        per_piece = (batched.tokens * alone.tokens).sum(axis=1) / np.linalg.norm(batched.tokens, axis=1) / np.linalg.norm(alone.tokens, axis=1)
        assert per_piece.min() > 0.999  # int8 activations are quantized per row block: padding moves them a hair
        assert float(batched.vector @ alone.vector) > 0.9999


def test_the_fast_and_reference_encoders_mask_alike(encoders, terms_of):
    evidence = terms_of("the revolutionary government with Fidel Castro at its head")
    kept = V.kept_spans(QUESTIONS[0], evidence, terms_of)
    fast, ref = encoders.query().embed_question(QUESTIONS[0]), encoders.reference().embed_question(QUESTIONS[0])
    assert float(V.masked_vector(fast.tokens, fast.spans, kept) @ V.masked_vector(ref.tokens, ref.spans, kept)) > 0.98


class VectorsOnly(Encoder):
    """An encoder that gives sentence vectors only (a model whose tokenizer has no character spans)."""

    def __init__(self, inner):
        self.inner = inner
        self.dimension = inner.dimension

    def encode(self, texts, **kwargs):
        return self.inner.encode(texts, **kwargs)


def test_an_encoder_without_word_pieces_still_gets_a_verdict(service):
    """It embeds the masked text again and is judged by the model fitted that way (rag.query.verdict.MODEL_REEMBEDDED):
    an answered question stays found, an off-topic or near-topic one is not found, the ranking is the same."""
    retriever = service.snapshot.retriever
    plain = Retriever(retriever.index, retriever.documents, retriever.lexical, VectorsOnly(retriever.encoder))
    alone = plain.encoder.embed_question(QUESTIONS[0])
    assert isinstance(alone, QuestionEmbedding) and alone.tokens is None and alone.spans == ()
    cases = {
        "Why did Trotsky think the bourgeoisie could not lead?": "found",  # words masked: the fallback really runs
        "How do I bake sourdough bread at home?": "not_found",
        "Which newspaper did Trotsky edit?": "not_found",
    }
    for question, verdict in cases.items():
        pooled, embedded_again = retriever.search(service.parse(question, 3)), plain.search(service.parse(question, 3))
        assert [h.passage.id for h in embedded_again.hits] == [h.passage.id for h in pooled.hits]
        assert embedded_again.verdict == pooled.verdict == verdict, (question, embedded_again.confidence)
    # with words masked, the re-embedded question has lost their context too: its cosine runs lower
    question = next(iter(cases))
    assert plain.search(service.parse(question, 3)).features.relation_cos < retriever.search(service.parse(question, 3)).features.relation_cos


def test_only_mean_pooling_models_give_word_pieces(encoders):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling

    from rag.encoding.torch_encoder import mean_pools_word_pieces

    model = encoders.reference().model
    assert mean_pools_word_pieces(model)
    transformer = model[0]
    dim = transformer.get_word_embedding_dimension()
    assert not mean_pools_word_pieces(SentenceTransformer(modules=[transformer, Pooling(dim, pooling_mode="cls")]))
    assert mean_pools_word_pieces(SentenceTransformer(modules=[transformer, Pooling(dim, pooling_mode="mean")]))
    assert not mean_pools_word_pieces(SentenceTransformer(modules=[transformer, Normalize(), Pooling(dim, pooling_mode="mean")]))


def test_a_token_output_that_does_not_pool_to_the_vector_is_not_used(encoders, monkeypatch, caplog, tmp_path):
    """The graph surgery is checked when the session opens: exposing the wrong tensor (here the first layer's
    output) leaves the encoder giving sentence vectors alone, with a warning, rather than wrong word pieces."""
    import onnx

    from rag.encoding import onnx_encoder
    from rag.encoding.onnx_encoder import ensure_onnx

    import shutil

    path = tmp_path / "copy.onnx"  # a copy: no cached token-output artifact beside it, so the surgery below runs
    shutil.copy(ensure_onnx(encoders.encoder_dir, encoders.spec, encoders.reference), path)

    def first_layer(onnx_path):
        model = onnx.load(str(onnx_path))
        name = next(n.output[0] for n in model.graph.node if n.op_type in onnx_encoder._HIDDEN_STATE_OPS)
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        return model, name

    monkeypatch.setattr(onnx_encoder, "_with_token_output", first_layer)
    encoder = onnx_encoder.OnnxEncoder(path, encoders.spec.local_dir, token_states=True)
    embedded = encoder.embed_questions(QUESTIONS)
    assert all(e.tokens is None for e in embedded) and "does not pool to the sentence vector" in caplog.text
    np.testing.assert_allclose(np.stack([e.vector for e in embedded]), encoder.encode(QUESTIONS), atol=1e-6)
