"""`rag eval` on your own questions: the question format, TREC files, the paired test, and real runs.

The fast tests use hand-made data with numbers worked out by hand; the last ones build a real index
(real model, real FAISS) over three short documents in tmp_path and score a tiny question file, a
tiny BEIR folder, and a second configuration, then check that ir_measures reads the same numbers
from run.trec and qrels.trec as the table.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import pytest

from eval import evalstats
from eval import metrics
from eval import trec
from rag.config import Settings
from rag.errors import InvalidInput
from eval.evalset import Question, load_questions
from eval.evaluation import QUESTIONS, Answer, Retrieved, resolve_gold, run_cli, score_question


def write(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), encoding="utf-8")
    return path


# --- the question format ----------------------------------------------------------------------


def test_defaults_id_is_the_line_number_answerable_follows_gold_and_other_fields_are_tags(tmp_path):
    path = write(tmp_path / "q.jsonl", [
        {"question": "Where do bees live?", "quotes": ["in hives"]},
        "",
        {"id": "p", "question": "Which passage?", "passages": ["abc123"], "kind": "entity", "split": "dev"},
        {"id": 7, "question": "Who won in 1999?", "answerable": False},
    ])
    first, second, third = load_questions(path)
    assert (first.id, first.answerable, first.quotes, first.line) == ("1", True, ("in hives",), 1)
    assert (second.id, second.passages, second.kind, second.split, second.line) == ("p", ("abc123",), "entity", "dev", 3)
    assert (third.id, third.answerable, third.has_gold) == ("7", False, False)


def test_the_bundled_file_loads_unchanged_with_its_extra_fields_as_tags():
    questions = load_questions(QUESTIONS)
    assert len(questions) >= 153 and len({q.id for q in questions}) == len(questions)
    assert {q.split for q in questions} == {"dev", "test"}
    assert all(q.kind and "section" in q.tags for q in questions)
    assert all(q.answerable == bool(q.quotes) for q in questions)


@pytest.mark.parametrize(
    "line, field",
    [
        ('{"question": "x", "quotes": ["a"]', None),  # not JSON
        ('["a list"]', None),
        ('{"quotes": ["a"]}', "question"),
        ('{"question": "   ", "quotes": ["a"]}', "question"),
        ('{"question": "x", "quotes": "a", "passages": [1]}', "passages"),
        ('{"question": "x", "quotes": [""]}', "quotes"),
        ('{"question": "x"}', "answerable"),  # no gold and no flag: cannot be scored
        ('{"question": "x", "answerable": true}', "answerable"),
        ('{"question": "x", "quotes": ["a"], "answerable": false}', "answerable"),
        ('{"question": "x", "quotes": ["a"], "answerable": "yes"}', "answerable"),
        ('{"question": "x", "passages": ["p"], "document": "d"}', "document"),
        ('{"id": "a b", "question": "x", "quotes": ["a"]}', "id"),
        ('{"question": "x", "quotes": ["a"], "split": 3}', "split"),
    ],
)
def test_a_bad_line_gets_one_error_naming_the_line_and_the_field(tmp_path, line, field):
    path = write(tmp_path / "q.jsonl", [{"question": "fine", "quotes": ["q"]}, line])
    with pytest.raises(InvalidInput) as caught:
        load_questions(path)
    message = str(caught.value)
    assert message.startswith("q.jsonl line 2: ")
    if field:
        assert f"field '{field}'" in message


def test_duplicate_ids_name_both_lines_and_an_empty_file_is_refused(tmp_path):
    path = write(tmp_path / "q.jsonl", [{"id": "a", "question": "x", "quotes": ["q"]}, {"id": "a", "question": "y", "quotes": ["q"]}])
    with pytest.raises(InvalidInput, match=r"line 2: field 'id': 'a' is already used on line 1"):
        load_questions(path)
    with pytest.raises(InvalidInput, match="no questions"):
        load_questions(write(tmp_path / "empty.jsonl", ["", " "]))
    with pytest.raises(InvalidInput, match="no such question file"):
        load_questions(tmp_path / "missing.jsonl")


def beir_folder(root):
    root.mkdir()
    write(root / "corpus.jsonl", [
        {"_id": "bees", "title": "Honey bees", "text": "Honey bees live in hives and make honey from the nectar of flowers. A colony has one queen."},
        {"_id": "volcanoes", "title": "Volcanoes", "text": "A volcano erupts when magma rises through the crust. Lava flows cool into basalt rock."},
        {"_id": "chess", "title": "Chess", "text": "In chess the knight moves in an L shape and can jump over other pieces on the board."},
    ])
    write(root / "queries.jsonl", [
        {"_id": "q1", "text": "How does the knight move in chess?"},
        {"_id": "q2", "text": "What do honey bees make from nectar?"},
        {"_id": "q3", "text": "A query without judgements"},
    ])
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tchess\t1\nq2\tbees\t2\nq2\tvolcanoes\t0\n")
    return root


def test_a_beir_folder_gives_the_judged_queries_with_their_relevant_documents(tmp_path):
    questions = load_questions(beir_folder(tmp_path / "beir"))
    assert [(q.id, q.documents) for q in questions] == [("q1", ("chess",)), ("q2", ("bees",))]
    (tmp_path / "beir" / "qrels" / "test.tsv").write_text("q1\tchess\tone\n")
    with pytest.raises(InvalidInput, match=r"test.tsv line 1: field 'score'"):
        load_questions(tmp_path / "beir")


# --- scoring, TREC files and statistics on hand-made data ------------------------------------


def test_quotes_resolve_over_the_whole_index_scoped_by_document():
    class P:
        def __init__(self, id, document, text):
            self.id, self.document, self.text = id, document, text

    passages = [P("a", "d1", "Bees make honey."), P("b", "d2", "Bees make honey too."), P("c", "d1", "Lava is hot.")]
    assert resolve_gold(Question("1", "q", quotes=("Bees make honey",)), passages) == {"a": 1, "b": 1}
    assert resolve_gold(Question("1", "q", quotes=("Bees make honey",), document="d2"), passages) == {"b": 1}
    assert resolve_gold(Question("1", "q", passages=("c",)), passages) == {"c": 1}
    assert resolve_gold(Question("1", "q", documents=("D1",)), passages, {"d1": "D1", "d2": "D2"}) == {"a": 1, "c": 1}


def test_quote_hit_agrees_with_a_brute_force_reading_of_the_boundary_rule():
    """Random passages and quotes (often a real cut: part of the quote taken from the passage's start or end):
    quote_hit is true exactly when the passage holds the whole quote, or one of its ends is a part of the
    quote at least half its length (a prefix of it closing the passage, a suffix opening it)."""
    rng = random.Random(3)
    words = "the bourgeoisie could not lead revolution workers peasants Trotsky Lenin 1905 soviets land".split()
    hits = cuts = 0
    for _ in range(600):
        passage = " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))
        quote = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        if rng.random() < 0.5:
            if rng.random() < 0.5:
                quote = passage[-rng.randint(4, 60):] + " " + quote  # the passage closes with the quote's head
            else:
                quote = quote + " " + passage[: rng.randint(4, 60)]  # the passage opens with its tail
        q, n = metrics.normalize_whitespace(quote), len(metrics.normalize_whitespace(quote))
        closes = any(2 * i >= n and passage.endswith(q[:i]) for i in range(1, n))  # a head of the quote ends the passage
        opens = any(2 * (n - i) >= n and passage.startswith(q[i:]) for i in range(1, n))  # a tail of it starts the passage
        expected = q in passage or closes or opens
        assert metrics.quote_hit(passage, quote) == expected, (passage, quote)
        hits += expected
        cuts += expected and q not in passage
    assert hits > 100 and cuts > 50  # the draw exercises both kinds of hit


def test_gold_is_scoped_by_paragraph_span_and_short_quotes_that_many_passages_hold_are_ambiguous():
    from eval.evaluation import ambiguous_quotes

    class P:
        def __init__(self, id, document, text, start=0, end=0):
            self.id, self.document, self.text, self.start, self.end = id, document, text, start, end

    passages = [P("a", "d", "It opened in 2014.", 0, 18), P("b", "d", "Sales grew in 2014.", 20, 39),
                P("c", "d", "The 2014 report.", 41, 57), P("d", "e", "In 2014 too.", 0, 12)]
    year = Question("y", "When did it open?", quotes=("2014",), document="d")
    assert resolve_gold(year, passages) == {"a": 1, "b": 1, "c": 1}
    assert ambiguous_quotes(year, passages) == {"2014": 3}  # 1 word, 3 passages of its document
    assert ambiguous_quotes(replace(year, document=None), passages) == {"2014": 4}
    spanned = replace(year, span=(20, 39))  # the paragraph it was written from: passage b only
    assert resolve_gold(spanned, passages) == {"b": 1} and ambiguous_quotes(spanned, passages) == {}
    assert resolve_gold(replace(year, span=(10, 25)), passages) == {"a": 1, "b": 1}  # both overlap it
    two = Question("t", "q", quotes=("Sales grew", "2014"), document="d")
    assert ambiguous_quotes(two, passages) == {"2014": 3}  # only the quote that is short and common
    long = Question("l", "q", quotes=("in 2014 the sales grew",))  # 5 words: never ambiguous, however many hold it
    assert ambiguous_quotes(long, [P(str(i), "d", "in 2014 the sales grew") for i in range(5)]) == {}


def answer(ids, scores):
    return Answer(tuple(Retrieved(f"text {i}", s, i, "d") for i, s in zip(ids, scores)), True, 0.9, None)


def test_hand_made_run_scores_as_worked_out_and_trec_files_round_trip_through_ir_measures(tmp_path):
    q1 = Question("q1", "first", passages=("b",))
    q2 = Question("q2", "second", passages=("a", "c", "z"))
    gold = {"q1": {"b": 1}, "q2": {"a": 1, "c": 1, "z": 1}}  # z exists in the index but is never retrieved
    a1 = answer(["a", "b", "c"], [3.0, 2.0, 2.0])  # the tie keeps our order
    a2 = answer(["a", "b", "c", "d"], [5.0, 4.0, 4.0, 1.0])
    rows = [score_question(q1, a1, gold["q1"], k=3), score_question(q2, a2, gold["q2"], k=3)]
    assert [r["rank"] for r in rows] == [2, 1]
    assert rows[0]["mrr@3"] == 0.5 and rows[1]["mrr@3"] == 1.0
    assert rows[0]["ndcg@3"] == pytest.approx(1 / math.log2(3))
    assert rows[1]["ndcg@3"] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3) + 1 / 2))  # ideal: 3 relevant
    assert [r["r@1"] for r in rows] == [0.0, 1.0] and [r["r@3"] for r in rows] == [1.0, 1.0]

    lines = [line for q, a in (("q1", a1), ("q2", a2)) for line in trec.run_lines(q, [p.id for p in a.passages], [p.score for p in a.passages], "hybrid")]
    assert lines[:3] == ["q1 Q0 a 1 3.000000 hybrid", "q1 Q0 b 2 2.000000 hybrid", "q1 Q0 c 3 1.999999 hybrid"]
    trec.write_lines(tmp_path / "run.trec", lines)
    trec.write_lines(tmp_path / "qrels.trec", [line for q in ("q1", "q2") for line in trec.qrels_lines(q, gold[q])])
    assert trec.read_qrels(tmp_path / "qrels.trec") == gold
    measured = trec.standard_metrics(tmp_path / "run.trec", tmp_path / "qrels.trec", k=3)["hybrid"]
    for key in ("r@1", "r@3", "mrr@3", "ndcg@3"):
        assert measured[key] == pytest.approx(metrics.mean(r[key] for r in rows), abs=1e-9), key
        for row in rows:
            assert measured["per_question"][row["id"]][key] == pytest.approx(row[key], abs=1e-9), (row["id"], key)


def test_paired_randomization_test_wins_losses_and_auroc_on_known_data():
    same = [1.0, 0.0, 0.5, 1.0]
    assert evalstats.paired_randomization_test(same, same) == 1.0
    better = [1.0] * 30
    worse = [0.0] * 30
    assert evalstats.paired_randomization_test(better, worse, rounds=2000) < 0.001
    # one question of 30 differs: a flip of its sign always gives the same |mean|, p = 1
    assert evalstats.paired_randomization_test([1.0] + [0.0] * 29, [0.0] * 30, rounds=500) == 1.0
    assert evalstats.wins_losses([1, 0, 0.5, 1], [0, 0, 1, 1]) == {"wins": 1, "losses": 1, "ties": 2}
    assert evalstats.auroc([0.9, 0.8, 0.3, 0.1], [True, False, True, False]) == 0.75
    assert evalstats.auroc([0.5, 0.5], [True, False]) == 0.5
    assert evalstats.auroc([0.1, 0.2], [True, True]) is None
    with pytest.raises(ValueError):
        evalstats.paired_randomization_test([1.0], [1.0, 0.0])


# --- real runs over a tiny corpus -----------------------------------------------------------

DOCS = {
    "bees.txt": "Honey bees\n\nHoney bees live in wooden hives and make honey from the nectar of flowers. "
    "A colony has a single queen that lays all of the eggs.\n\nWorker bees dance to tell the others where flowers grow.\n",
    "volcanoes.txt": "Volcanoes\n\nA volcano erupts when molten magma rises through the crust of the earth. "
    "Lava flows cool slowly into dark basalt rock.\n\nMount Etna in Sicily is one of the most active volcanoes.\n",
    "chess.txt": "Chess\n\nIn chess the knight moves in an L shape and can jump over the other pieces on the board. "
    "The bishop moves along the diagonals only.\n\nA game ends in checkmate when the king cannot escape.\n",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    seeds = root / "seeds"
    seeds.mkdir()
    for name, text in DOCS.items():
        (seeds / name).write_text(text, encoding="utf-8")
    return root, Settings(seeds_dir=seeds, index_dir=root / "index")


@pytest.mark.slow  # two tiny indexes with the real model: ~20 s on 2 shared cores
def test_own_questions_give_known_numbers_trec_files_agree_with_ir_measures_and_configs_compare(tiny, capsys, encoders):
    root, settings = tiny
    questions = write(root / "questions.jsonl", [
        {"id": "knight", "question": "How does the knight move in chess?", "quotes": ["the knight moves in an L shape"]},
        {"id": "honey", "question": "What do honey bees make from the nectar of flowers?", "quotes": ["make honey from the nectar"], "document": "bees"},
        {"id": "etna", "question": "Which active volcano is in Sicily?", "quotes": ["Mount Etna in Sicily"], "split": "test"},
        {"id": "mars", "question": "Who was the first person to walk on Mars?", "answerable": False},
        {"id": "typo", "question": "Where do bees live?", "quotes": ["penguins nest on the ice shelf"]},  # in no passage
    ])
    small = root / "small.json"
    small.write_text(json.dumps({"name": "small", "settings": {"max_passage_tokens": 24, "min_passage_chars": 10}}))
    out = root / "run"
    assert run_cli(settings, questions, out, ["hybrid", "lexical"], k=5, plot_png=True, configs=[small], cache=root / "cache", encoders=encoders) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([  # one run a file, one qrels per index
        "metrics.json", "per_question.jsonl", "run.trec", "run.default.lexical.trec", "run.small.hybrid.trec", "run.small.lexical.trec",
        "qrels.trec", "qrels.small.trec", "recall.png", "report.json"])
    result = json.loads((out / "metrics.json").read_text())
    assert set(result["systems"]) == {"default/hybrid", "default/lexical", "small/hybrid", "small/lexical"}
    for name, numbers in result["systems"].items():
        assert numbers["questions"] == 3
        assert numbers["r@1"] == numbers["r@5"] == numbers["mrr@5"] == 1.0, name  # each answer sits in one obvious passage
        standard = result["ir_measures"][name]
        for key in ("r@1", "r@3", "r@5", "mrr@5", "ndcg@5"):
            assert standard[key] == pytest.approx(numbers[key], abs=1e-9), (name, key)
    assert result["gold_not_in_index"] == {"default": ["typo"], "small": ["typo"]}  # left out of the rank metrics, as trec_eval does
    compared = result["comparisons"][0]
    assert (compared["a"], compared["b"], compared["questions"]) == ("default/hybrid", "default/lexical", 3)
    assert compared["metrics"]["r@1"] == {"a": 1.0, "b": 1.0, "p": 1.0, "wins": 0, "losses": 0, "ties": 3}

    qrels = trec.read_qrels(out / "qrels.trec")
    assert set(qrels) == {"knight", "honey", "etna"}  # the unanswerable question has no relevant passage
    rows = [json.loads(line) for line in (out / "per_question.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["knight", "honey", "etna", "mars", "typo"]
    top = rows[0]["systems"]["default/hybrid"]["passages"][0]
    assert top["rank"] == 1 and top["document"] == "chess" and top["gold"] is True and top["id"] in qrels["knight"]
    assert trec.read_run(out / "run.trec")["default/hybrid"]["knight"][top["id"]] == top["score"]
    small_qrels = trec.read_qrels(out / "qrels.small.trec")  # the other configuration's own passages
    assert set(small_qrels) == set(qrels) and set(small_qrels["knight"]) <= set(trec.read_run(out / "run.small.hybrid.trec")["small/hybrid"]["knight"])
    assert set(trec.read_run(out / "run.default.lexical.trec")) == {"default/lexical"}
    printed = capsys.readouterr().out
    assert "| default/hybrid | 3 |" in printed and "comparisons" in printed

    # an existing folder is never written into, and a bad line leaves nothing behind
    with pytest.raises(InvalidInput, match="already exists"):
        run_cli(settings, questions, out, ["hybrid"], cache=root / "cache", encoders=encoders)
    bad = write(root / "bad.jsonl", [{"question": "fine", "quotes": ["x"]}, {"question": "no gold"}])
    with pytest.raises(InvalidInput, match="bad.jsonl line 2: field 'answerable'"):
        run_cli(settings, bad, root / "never", cache=root / "cache", encoders=encoders)
    assert not (root / "never").exists() and not list(root.glob(".never*"))


def test_a_tiny_beir_folder_is_indexed_as_documents_and_scored_by_its_qrels(tiny, encoders):
    root, settings = tiny
    out = root / "beir-run"
    assert run_cli(settings, beir_folder(root / "beir"), out, ["dense"], k=3, plot_png=False, cache=root / "cache", encoders=encoders) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result["systems"]["dense"]["questions"] == 2 and result["systems"]["dense"]["r@1"] == 1.0
    assert result["systems"]["dense"]["highlight@1"] is None  # no quotes: no highlight to check
    assert result["ir_measures"]["dense"]["ndcg@3"] == pytest.approx(result["systems"]["dense"]["ndcg@3"], abs=1e-9)
    rows = [json.loads(line) for line in (out / "per_question.jsonl").read_text().splitlines()]
    assert rows[0]["systems"]["dense"]["passages"][0]["document"] == "chess"  # the corpus _id, not the file name


def test_run_refuses_before_building_anything_a_question_the_service_would_refuse_or_a_bad_mode(tmp_path, encoders):
    questions = write(tmp_path / "q.jsonl", [{"question": "short", "quotes": ["x"]}, {"question": "far too long a question", "quotes": ["x"]}])
    settings = Settings(seeds_dir=tmp_path / "no-seeds", index_dir=tmp_path / "index", max_question_chars=10)
    with pytest.raises(InvalidInput, match=r"q.jsonl line 2: field 'question': question is 23 characters long"):
        run_cli(settings, questions, tmp_path / "out", cache=tmp_path / "cache", encoders=encoders)
    with pytest.raises(InvalidInput, match="unknown mode 'fuzzy'"):
        run_cli(settings, questions, tmp_path / "out", ["fuzzy"], cache=tmp_path / "cache", encoders=encoders)
    with pytest.raises(InvalidInput, match="--k must be between 1 and 50"):
        run_cli(settings, questions, tmp_path / "out", k=0, cache=tmp_path / "cache", encoders=encoders)
    assert list(tmp_path.iterdir()) == [questions]


def test_a_bad_configuration_file_is_one_clear_error(tmp_path):
    from eval.evaluation import load_config

    base = Settings(seeds_dir=tmp_path, index_dir=tmp_path / "index")
    cases = {
        "not json": "config .*cannot read it as JSON",
        '{"name": "x", "settings": {"chunk_size": 3}}': r"field 'settings': unknown setting\(s\) \['chunk_size'\]",
        '{"name": "x", "settings": {"max_passage_tokens": "many"}}': "setting 'max_passage_tokens': Input should be a valid integer",
        '{"name": "a b", "settings": {}}': "field 'name'",
    }
    for text, pattern in cases.items():
        path = tmp_path / "c.json"
        path.write_text(text)
        with pytest.raises(InvalidInput, match=pattern):
            load_config(path, base, tmp_path / "cache")
    path.write_text('{"name": "small", "settings": {"max_passage_tokens": 120}}')
    config = load_config(path, base, tmp_path / "cache")
    assert config.settings.max_passage_tokens == 120 and config.settings.index_dir.parent == tmp_path / "cache"


@pytest.mark.slow  # the shared article index; ~15 s
def test_the_bundled_test_split_scores_the_same_by_passage_id_as_by_quote_and_as_ir_measures(settings, service, tmp_path, encoders):
    """Gold resolved over the whole index and matched by id gives the numbers the quote rule gives on the
    retrieved texts (the old way), and ir_measures reads them back from the TREC files."""
    from eval.evaluation import evaluate, service_system

    out = tmp_path / "run"
    assert run_cli(settings, QUESTIONS, out, ["hybrid"], split="test", plot_png=False, cache=tmp_path / "cache", encoders=encoders) == 0
    result = json.loads((out / "metrics.json").read_text())
    by_id = result["systems"]["hybrid"]
    assert result["gold_not_in_index"] == {"default": []}
    for key in ("r@1", "r@3", "r@5", "r@10", "mrr@10", "ndcg@10"):
        assert result["ir_measures"]["hybrid"][key] == pytest.approx(by_id[key], abs=1e-4), key
    test_split = [q for q in load_questions(QUESTIONS) if q.split == "test"]
    by_quote = evaluate({"hybrid": service_system(service, "hybrid")}, test_split)["systems"]["hybrid"]["all"]
    for key in ("questions", "r@1", "r@3", "r@5", "r@10", "mrr@10", "highlight@1", "answerable_recall", "unanswerable_recall"):
        assert by_id[key] == by_quote[key], key


# --- SQuAD files ----------------------------------------------------------------------------

SQUAD = {"version": "v2.0", "data": [
    {"title": "Honey_bee", "paragraphs": [
        {"context": "Honey bees live in wooden hives and make honey from the nectar of flowers. A colony has a single queen "
                    "that lays all of the eggs, up to 2,000 a day in summer. The workers feed her and clean the cells, and "
                    "in winter they cluster around her to keep the hive warm until the first flowers open in spring. "
                    "A strong colony holds some fifty thousand bees at the height of the year.",
         "qas": [
             {"id": "bee1", "question": "What do honey bees make from the nectar of flowers?", "is_impossible": False,
              "answers": [{"text": "honey", "answer_start": 39}, {"text": "honey", "answer_start": 39}]},
             {"id": "bee2", "question": "How many eggs can the queen lay in a day?", "is_impossible": False,
              "answers": [{"text": "up to 2,000", "answer_start": 128}, {"text": "2,000", "answer_start": 134}]},
             {"id": "bee3", "question": "How many eggs does a worker bee lay in a day?", "is_impossible": True,
              "answers": [], "plausible_answers": [{"text": "2,000", "answer_start": 134}]}]},
        {"context": "Worker bees dance to tell the other bees of the colony where flowers grow and how far away they are, "
                    "so that the hive never runs short of nectar for honey. The waggle dance was decoded by Karl von Frisch "
                    "in the 1940s, who watched the bees in glass hives for many summers and later won a Nobel Prize. "
                    "Other insects, such as ants, leave scent trails instead of dancing.",
         "qas": [
             {"id": "bee4", "question": "Who decoded the waggle dance of the bees?", "is_impossible": False,
              "answers": [{"text": "Karl von Frisch", "answer_start": 133}]},
             {"id": "bee5", "question": "Who filmed the waggle dance first?", "is_impossible": True, "answers": []}]}]},
    {"title": "Volcano", "paragraphs": [
        {"context": "A volcano erupts when molten magma rises through the crust of the earth. Lava flows cool slowly "
                    "into dark basalt rock, and the ash can bury whole towns. Gases escape before an eruption, and "
                    "scientists measure them, along with small earthquakes, to warn the people who live nearby. "
                    "Some volcanoes sleep for thousands of years between two eruptions.",
         "qas": [
             {"id": "vol1", "question": "What does lava cool into?", "is_impossible": False,
              "answers": [{"text": "dark basalt rock", "answer_start": 101}]},
             {"id": "vol2", "question": "What does lava cool into on the sea floor?", "is_impossible": True, "answers": []}]},
        {"context": "Mount Etna in Sicily is one of the most active volcanoes in the world. It has erupted more than "
                    "two hundred times since the first record, made in 1500 BC. Farmers grow grapes and oranges on its "
                    "slopes, where the old lava has turned into rich soil, and tourists climb to its craters in summer. "
                    "A railway runs almost all the way around the foot of the mountain.",
         "qas": [
             {"id": "vol3", "question": "Which active volcano is in Sicily?", "is_impossible": False,
              "answers": [{"text": "Mount Etna", "answer_start": 0}]},
             {"id": "vol4", "question": "Which active volcano is in Sardinia?", "is_impossible": True, "answers": []}]}]}]}


def test_a_squad_file_gives_its_articles_as_documents_and_its_answers_as_quotes_scoped_to_their_paragraph(tmp_path):
    from eval.evalset import load_squad

    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(SQUAD), encoding="utf-8")
    articles, questions = load_squad(path)
    assert [q.id for q in load_questions(path)] == [q.id for q in questions] == ["bee1", "bee2", "bee3", "bee4", "bee5", "vol1", "vol2", "vol3", "vol4"]
    bee = articles[0]
    assert bee.title == "Honey_bee" and bee.text == SQUAD["data"][0]["paragraphs"][0]["context"] + "\n\n" + SQUAD["data"][0]["paragraphs"][1]["context"] + "\n"
    by_id = {q.id: q for q in questions}
    assert by_id["bee1"].quotes == ("honey",)  # the answers' distinct texts
    assert by_id["bee2"].quotes == ("up to 2,000", "2,000")
    start, end = by_id["bee4"].span
    assert bee.text[start:end] == SQUAD["data"][0]["paragraphs"][1]["context"] and "Karl von Frisch" in bee.text[start:end]
    assert (by_id["bee4"].document, by_id["bee4"].answerable, by_id["bee4"].article, by_id["bee4"].tags["paragraph"]) == ("Honey_bee", True, "Honey_bee", 1)
    assert (by_id["bee3"].answerable, by_id["bee3"].quotes, by_id["bee3"].span) == (False, (), None)  # plausible answers are no gold
    broken = {"data": [{"title": "X", "paragraphs": [{"context": "Some text.", "qas": [{"id": "x1", "question": "Why?", "is_impossible": False, "answers": []}]}]}]}
    path.write_text(json.dumps(broken))
    with pytest.raises(InvalidInput, match=r"article 1: field 'paragraphs\[0\].qas\[0\].answers': an answerable question"):
        load_questions(path)
    path.write_text(json.dumps({"data": [{"title": "X", "paragraphs": [{"context": " "}]}]}))
    with pytest.raises(InvalidInput, match=r"field 'paragraphs\[0\].context'"):
        load_questions(path)
    jsonl = write(tmp_path / "lines.json", [{"question": "a .json file of JSON lines is read as JSONL", "quotes": ["x"]}, {"question": "b", "quotes": ["y"]}])
    assert [q.question[0] for q in load_questions(jsonl)] == ["a", "b"]


@pytest.mark.slow  # one tiny index with the real model: ~15 s on 2 shared cores
def test_a_tiny_squad_file_is_indexed_as_its_articles_and_scored_per_article(tiny, capsys, encoders):
    root, settings = tiny
    path = root / "tiny-squad.json"
    path.write_text(json.dumps(SQUAD), encoding="utf-8")
    user_seeds = sorted(p.name for p in settings.seeds_dir.iterdir())
    out = root / "squad-run"
    assert run_cli(settings, path, out, ["hybrid"], k=5, plot_png=False, cache=root / "cache", encoders=encoders) == 0
    assert sorted(p.name for p in settings.seeds_dir.iterdir()) == user_seeds  # the user's seeds are never written
    corpus = next((root / "cache").glob("squad-tiny-squad-*"))
    assert sorted(p.name for p in (corpus / "seeds").iterdir()) == ["a0000.meta.json", "a0000.txt", "a0001.meta.json", "a0001.txt"]
    result = json.loads((out / "metrics.json").read_text())
    overall = result["systems"]["hybrid"]
    assert overall["questions"] == 5 and result["gold_not_in_index"] == {"default": []} and result["ambiguous_quotes"] == {"default": {}}
    assert overall["r@1"] == overall["r@5"] == 1.0  # each answer sits in one obvious paragraph
    assert overall["refused_unanswerable"] is not None and sum(overall["verdicts_unanswerable"].values()) == 4
    assert sum(overall["verdicts_answerable"].values()) == 5 and overall["auroc_all"] is not None
    assert set(result["groups"]["hybrid"]) == {"article=Honey_bee", "article=Volcano"}
    assert result["groups"]["hybrid"]["article=Volcano"]["questions"] == 2
    assert sum(result["groups"]["hybrid"]["article=Volcano"]["verdicts_unanswerable"].values()) == 2
    qrels = trec.read_qrels(out / "qrels.trec")
    rows = {json.loads(line)["id"]: json.loads(line) for line in (out / "per_question.jsonl").read_text().splitlines()}
    top = rows["bee4"]["systems"]["hybrid"]["passages"][0]
    assert top["document"] == "Honey_bee" and top["gold"] and list(qrels["bee4"]) == [top["id"]]
    assert len(qrels["bee1"]) == 1 and list(qrels["bee1"]) != list(qrels["bee4"])  # "honey" is in both paragraphs: only its own counts
    assert json.loads((out / "report.json").read_text())["index"]["passages"] == 4  # one passage a paragraph
    printed = capsys.readouterr().out
    assert "### hybrid per article (SQuAD)" in printed
    assert "| Honey_bee | 3 | 2 |" in printed and "| Volcano | 2 | 2 |" in printed and "| all | 5 | 4 |" in printed
