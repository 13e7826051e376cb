"""The verdict (rag.query.verdict): its features on hand-made inputs, and each state from a real query on the real index."""

import numpy as np
import pytest

from rag.query import answer_types, coverage
from rag.query import verdict as V
from rag.query.answerable import AnswerabilityModel, BlendedModel, fit
from rag.index.lexical import LexicalIndex


@pytest.fixture(scope="module")
def terms_of():
    return LexicalIndex(["a tiny corpus", "of two passages"]).terms


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("When did Fidel Castro die?", "date"),
        ("In what year was the Fourth International founded?", "date"),
        ("In which century did Trotsky write?", "date"),
        ("How many people lived in the cities?", "number"),
        ("How long after 1905 did he write it?", "number"),
        ("Which country did Nahuel Moreno come from?", "place"),
        ("Who led the Jacobins?", None),  # answers to "who" were as often a class as a name (see the module)
        ("Why could the bourgeoisie not lead?", None),
        ("What is the law of uneven and combined development?", None),
    ],
)
def test_answer_type_from_the_wording(question, kind):
    assert answer_types.answer_type(question) == kind


def test_type_met_needs_a_date_a_number_or_a_new_name():
    assert answer_types.type_met("date", "Nahuel Moreno revised the theory in 1984.", "When did Moreno die?")
    assert answer_types.type_met("date", "It happened in the 1920s.", "When?")
    assert answer_types.type_met("date", "By the turn of the century, capitalism had spread.", "When?")
    assert not answer_types.type_met("date", "This may have sounded ridiculous.", "When?")  # the modal "may" is not a month
    for schedule in ("Claims are paid on the 25th.", "The freeze starts at 15:00.", "Bins go out every Thursday.", "It closes at noon."):
        assert answer_types.type_met("date", schedule, "When?"), schedule  # a schedule's "when": a day or a time of day
    assert not answer_types.type_met("date", "Python 3.11 is the version.", "When?")  # a version is not a time
    assert answer_types.answer_type("By what time must I collect my badge?") == "date"
    assert not answer_types.type_met("date", "Fidel Castro was at its head.", "When did Fidel Castro die?")
    assert answer_types.type_met("number", "Thousands of communists were slaughtered.", "How many were killed?")
    assert answer_types.type_met("number", "After six years of the uprising.", "How many years?")
    assert not answer_types.type_met("number", "The rebels are united by a goal.", "How many rebels?")
    # spelled-out cardinals past twelve, and a duration without a number for "how long"
    q = "How long is the security training module?"
    assert answer_types.type_met("number", "It ends with the security training module, which takes roughly ninety minutes.", q)
    assert answer_types.type_met("number", "Forty-two delegates attended.", "How many delegates attended?")
    assert answer_types.type_met("number", "The module takes an hour.", q)
    assert not answer_types.type_met("number", "The module takes an hour.", "How many modules are there?")
    assert not answer_types.type_met("number", "The module is taught by the security team.", q)
    assert answer_types.type_met("place", "He came from Argentina to lead it.", "Which country did he come from?")
    assert not answer_types.type_met("place", "Moreno revised the theory.", "Which country did Moreno come from?")  # only the question's own name
    assert answer_types.type_met(None, "anything", "Why?")


def test_rarity_weighted_coverage():
    idf = {"lenin": 2.0, "revolut": 0.5}
    assert coverage.coverage({"lenin", "die"}, {"lenin"}, idf, unseen=4.0) == pytest.approx(2 / 6)  # "die" is unseen: weighs most
    assert coverage.coverage({"lenin", "revolut"}, {"lenin", "revolut", "x"}, idf, unseen=4.0) == 1.0
    assert coverage.coverage(set(), {"lenin"}, idf, unseen=4.0) == 0.0
    table = coverage.idf_table([{"a", "b"}, {"a"}, {"c"}])
    assert table["a"] < table["b"] == table["c"] < coverage.unseen_idf(3)


def test_masked_question_keeps_what_the_evidence_does_not_say(terms_of):
    evidence = terms_of("the revolutionary government with Fidel Castro at its head")
    assert V.masked_question("When did Fidel Castro die?", evidence, terms_of) == "When did die"
    assert V.masked_question("Who was Fidel Castro?", evidence, terms_of) is None  # nothing left to ask about


def test_kept_spans_are_the_words_the_evidence_does_not_hold(terms_of):
    evidence = terms_of("the revolutionary government with Fidel Castro at its head")
    question = "When did Fidel Castro die?"
    assert [question[a:b] for a, b in V.kept_spans(question, evidence, terms_of)] == ["When", "did", "die"]
    assert V.kept_spans("Who was Fidel Castro?", evidence, terms_of) is None
    frames = terms_of("A Langstroth hive uses removable frames spaced exactly 9.5 millimetres apart")
    assert V.kept_spans("How far apart are frames in a Langstroth hive?", frames, terms_of) is None  # "how far" is form
    question = "How many frames does a Langstroth hive hold in winter?"
    assert [question[a:b] for a, b in V.kept_spans(question, frames, terms_of)] == ["How", "many", "does", "a", "hold", "in", "winter"]


def test_auxiliaries_modals_and_use_are_the_question_s_form(terms_of):
    room = terms_of("Riverside Room Has a bar hatch and a balcony overlooking the river.")
    assert V.kept_spans("Does the Riverside Room have a balcony?", room, terms_of) is None
    launch = terms_of("A coaching launch must carry a VHF radio tuned to channel 16.")
    assert V.kept_spans("What radio channel must the launch use?", launch, terms_of) is None
    question = "Does the Riverside Room have a piano?"  # what the evidence does not hold stays
    assert [question[a:b] for a, b in V.kept_spans(question, room, terms_of)] == ["Does", "the", "have", "a", "piano"]
    minutes = terms_of("14 January 2025 The board approved the annual budget of 2.4 million euros.")
    question = "What budget did the board approve in May 2025?"  # a month, not a modal
    assert [question[a:b] for a, b in V.kept_spans(question, minutes, terms_of)] == ["What", "did", "the", "in", "May"]
    assert V.kept_spans("May the board approve a budget?", minutes, terms_of) is None  # opening the question: a modal


def test_the_verb_of_a_measure_is_the_question_s_form(terms_of):
    minutes = terms_of("Item 3 The boathouse roof leak will be repaired by Bowland Roofing for £2,350.")
    assert V.kept_spans("How much will the roof repair cost?", minutes, terms_of) is None
    incident = terms_of("INC-2291: checkout outage The checkout service returned errors for 42 minutes.")
    assert V.kept_spans("How long did INC-2291 last?", incident, terms_of) is None
    question = "What did the roof repair cost?"  # not a "how much" question: "cost" is what it asks
    assert [question[a:b] for a, b in V.kept_spans(question, minutes, terms_of)] == ["What", "did", "the", "cost"]
    question = "Who will pay for the roof repair?"
    assert "pay" in [question[a:b] for a, b in V.kept_spans(question, minutes, terms_of)]
    assert V.kept_spans("Roof repair: how much will it cost?", minutes, terms_of) is None  # not only at the start
    question = "How much will it cost to pay for the roof repair?"  # the verb nearest the measure is form, not the last one
    assert V.kept_spans(question, minutes | terms_of("pay"), terms_of) is None
    assert V.kept_spans(question, minutes | terms_of("cost"), terms_of) is not None
    question = "How much paid leave does the roofer get?"  # right after "how much": what is asked, not a verb
    assert "paid" in [question[a:b] for a, b in V.kept_spans(question, minutes, terms_of)]


def test_masked_vector_pools_the_kept_word_pieces_and_the_special_tokens():
    tokens = np.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [0, 0, 0]], dtype=np.float32)
    spans = ((0, 0), (0, 4), (5, 9), (0, 0))  # [CLS] "When" "Fidel" [SEP]
    got = V.masked_vector(tokens, spans, [(0, 4)])  # "Fidel" masked out
    assert got == pytest.approx(np.array([1.0, 2.0, 0.0]) / np.sqrt(5), abs=1e-6)
    everything = V.masked_vector(tokens, spans, [(0, 4), (5, 9)])
    assert everything == pytest.approx(tokens.mean(axis=0) / np.linalg.norm(tokens.mean(axis=0)), abs=1e-6)


def test_relation_cos_is_the_mean_of_the_best():
    vectors = np.eye(3, dtype=np.float32)
    masked = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    assert V.relation_cos(masked, vectors, best=2) == pytest.approx(0.7)
    assert V.relation_cos(masked, vectors, best=1) == pytest.approx(0.8)
    assert V.relation_cos(masked, vectors, best=5) == pytest.approx(1.4 / 3)  # fewer than `best`: all of them
    cosines = np.linspace(0.1, 0.8, 8, dtype=np.float32)  # eight sentences: the default mean takes the best RELATION_BEST
    many = cosines[:, None] * np.array([1, 0, 0], np.float32)
    assert V.relation_cos(np.array([1, 0, 0], np.float32), many) == pytest.approx(cosines[-V.RELATION_BEST:].mean())
    assert V.relation_cos(masked, vectors[:1]) == pytest.approx(0.6)
    assert V.relation_cos(masked, vectors[:0]) == 0.0


def test_best_evidence_checks_the_type_in_the_best_covering_sentence():
    idf = {"moreno": 3.0, "revis": 2.0}
    sentences = [V.Sentence("Moreno revised the theory in 1984.", frozenset({"moreno", "revis", "theori"}), 0.5),
                 V.Sentence("Others wrote in 1990.", frozenset({"wrote"}), 0.6)]
    cover, typed = V.best_evidence("When did Moreno revise it?", {"moreno", "revis"}, sentences, idf, 4.0)
    assert cover == 1.0 and typed == 1.0
    cover, typed = V.best_evidence("When did Moreno die?", {"moreno", "die"}, sentences[:1], idf, 4.0)
    assert cover == pytest.approx(3 / 7) and typed == 1.0
    assert V.best_evidence("When?", set(), [], idf, 4.0) == (0.0, 0.0)


def test_the_type_is_checked_in_the_highlighted_sentence_when_there_is_one():
    # the best-covering sentence holds "volunteers", the rarer word, but not the amount; the highlight shows the other
    idf = {"volunt": 3.0, "paid": 1.0, "drive": 2.0}
    sentences = [V.Sentence("Volunteers keep our running costs down.", frozenset({"volunt", "keep", "run", "cost"}), 0.6),
                 V.Sentence("Mileage is paid at 45p a mile.", frozenset({"mileag", "paid", "mile"}), 0.5)]
    question, terms = "How much are volunteers paid for driving?", {"volunt", "paid", "drive"}
    assert V.best_evidence(question, terms, sentences, idf, 4.0)[1] == 0.0
    assert V.best_evidence(question, terms, sentences, idf, 4.0, highlighted=(1,))[1] == 1.0
    assert V.best_evidence(question, terms, sentences, idf, 4.0, highlighted=(0,))[1] == 0.0


def test_a_date_in_the_heading_a_sentence_sits_under_answers_when():
    idf = {"sms": 4.0, "remind": 3.0, "ad": 1.0}
    added = V.Sentence("- SMS reminders for booked repair slots.", frozenset({"sms", "remind"}), 0.7, section="[2.3.0] - 2025-02-20 › Added")
    assert V.best_evidence("When were SMS reminders added?", {"sms", "remind", "ad"}, [added], idf, 4.0)[1] == 1.0
    undated = V.Sentence("- SMS reminders for booked repair slots.", frozenset({"sms", "remind"}), 0.7, section="Added")
    assert V.best_evidence("When were SMS reminders added?", {"sms", "remind", "ad"}, [undated], idf, 4.0)[1] == 0.0
    # only "when": a version's digits in the heading are no count for "how many"
    assert V.best_evidence("How many SMS reminders?", {"sms", "remind"}, [V.Sentence("- SMS reminders.", frozenset({"sms", "remind"}), 0.7,
                                                                                         section="[2.3.0] › Added")], idf, 4.0)[1] == 0.0


def test_asked_entities_are_name_runs_and_codes():
    assert answer_types.asked_entities("Which department does Chen Wei work in?") == [frozenset({"chen", "wei"})]
    assert answer_types.asked_entities("Who started earlier, Chen Wei or Dana Scott?") == [frozenset({"chen", "wei"}), frozenset({"dana", "scott"})]
    assert answer_types.asked_entities("How many seats does room N131 have?") == [frozenset({"n131"})]
    assert answer_types.asked_entities("Where does Dr. Berg's team sit?") == [frozenset({"berg"})]  # a title is not a name
    assert answer_types.asked_entities("Who do I ask for a GitHub account?") == [frozenset({"github"})]  # nor is "I"
    assert answer_types.asked_entities("When does Hannah Schulz's ThinkPad expire?") == [frozenset({"hannah", "schulz"}), frozenset({"thinkpad"})]
    assert answer_types.asked_entities("Paris is where?") == []  # the first word is capitalised anyway
    assert answer_types.asked_entities("Quick one: Which office is Ann in?") == [frozenset({"ann"})]  # so is a sentence's
    assert answer_types.asked_entities("Did Chen Wei join in March, on a Monday?") == [frozenset({"chen", "wei"})]
    assert answer_types.asked_entities("What is the DOB of Ann?") == [frozenset({"ann"})]  # an acronym may be a column's
    assert answer_types.asked_entities("Where does José Núñez sit?") == [frozenset({"jose", "nunez"})]  # accents folded
    assert answer_types.asked_entities("Does Éric work in Łódź or Москва?") == [frozenset({"eric"}), frozenset({"łodz"}), frozenset({"москва"})]
    assert answer_types.asked_entities("how much is the hotel limit?") == []


def test_names_keep_the_question_s_spelling():
    assert answer_types.named_in("When does Hannah Schulz's ThinkPad expire?") == [("Hannah Schulz", frozenset({"hannah", "schulz"})),
                                                                                  ("ThinkPad", frozenset({"thinkpad"}))]
    assert answer_types.named_in("Who is asset HL-0150 assigned to?") == [("HL-0150", frozenset({"hl", "0150"}))]


def test_a_vocabulary_holds_a_word_in_its_other_forms_only():
    words = answer_types.Vocabulary("Germany and Egypt traded with Asia; temperatures in degrees Celsius. Porto, Madrid.")
    for word in ("germany", "german", "egyptian", "asian", "celsiu", "porto"):
        assert words.holds(word), word
    for word in ("barcelona", "mad", "made", "egy", "portugal"):  # "portugal" shares only "port" with "porto"
        assert not words.holds(word), word


def test_names_absent_are_those_no_document_holds_whole():
    policy = answer_types.Vocabulary("Nightly hotel limits: Lisbon 150 EUR, Porto 130 EUR, Madrid 170 EUR. Ana Sousa approves.")
    staff = answer_types.Vocabulary("Pedro Costa works in Lisbon.")
    absent = lambda question: answer_types.names_absent(question, [policy, staff])  # noqa: E731
    assert absent("What is the nightly hotel limit in Barcelona?") == ["Barcelona"]
    assert absent("What is the nightly hotel limit in Madrid?") == []
    assert absent("What is Pedro Sousa's phone number?") == ["Pedro Sousa"]  # each word somewhere, the whole name in none
    assert absent("Does Ana Sousa approve the Madrid limit?") == []
    assert absent("how much is the hotel limit?") == []  # names nothing
    assert answer_types.names_absent("What about Madrid?", []) == ["Madrid"]


def test_a_season_is_named_as_a_year_is():
    courses = answer_types.Vocabulary("Learn to Row runs in spring and summer. The course costs £145.")
    assert answer_types.names_absent("How much is the autumn course?", [courses]) == ["autumn"]
    assert answer_types.names_absent("How much is the Summer course?", [courses]) == []
    assert answer_types.names_absent("Is the valve spring-loaded?", [courses]) == []  # part of a word


def test_days_of_months_are_read_however_written_and_must_be_named_as_days():
    minutes = answer_types.Vocabulary("The next meeting is on 18 March 2025 at 18:30; the one after on April 22nd. Due 2025-06-01.")
    assert minutes.days == {(18, 3), (22, 4), (1, 6)}
    absent = lambda question: answer_types.names_absent(question, [minutes])  # noqa: E731
    assert absent("When is the board meeting on 18 April 2025?") == ["18 April"]
    assert absent("What is on the 22nd of April?") == [] and absent("What is due on June 1st?") == []
    assert absent("What is due on June 1?") == []  # a month and a day name nothing else
    assert absent("Who spoke on the 16th?") == []  # an ordinal alone is no code and no day of a month
    assert absent("How many of the 10 may attend?") == []  # the verb, not the month
    assert absent("What is on 18 April, or April 18?") == ["18 April"]  # one day, named once
    numeric = answer_types.Vocabulary("Minutes of the meeting held on 18/04/2025.")
    assert answer_types.names_absent("What was decided on 18 April?", [numeric]) == []


def test_a_number_after_a_name_is_held_as_written_or_as_a_roman_numeral():
    text = answer_types.Vocabulary("Before World War I. The Trailhawk 500X. Region 57. In February 2010 a call.")
    absent = lambda question: answer_types.names_absent(question, [text])  # noqa: E731
    assert absent("Who was rich before World War 1?") == [] and absent("What about World War 3?") == ["World War 3"]
    assert absent("Who runs Region 57?") == [] and absent("Who runs Region 58?") == ["Region 58"]
    assert absent("How much is the Trailhawk 700?") == ["Trailhawk 700"]
    assert absent("Where was the Feb 2010 call published?") == []  # "Feb" is a month, as "February" is


def test_versions_must_be_held_as_written_but_for_trailing_zeros():
    notes = answer_types.Vocabulary("Version 3.7.1 (28 May 2025) fixed rounding. v2.4 was the first. It costs 1.2 million.")
    absent = lambda question: answer_types.names_absent(question, [notes])  # noqa: E731
    assert absent("When was version 3.7.1 released?") == [] and absent("What changed in v2.4.0?") == []
    assert absent("What was added in version 3.9.0?") == ["3.9.0"] and absent("What is new in version 3.8?") == ["3.8"]
    assert absent("Is it 2.5 percent?") == []  # a decimal is no version unless named one
    at_the_end = answer_types.Vocabulary("The rounding bug was fixed in 3.7.1. Release 2.4 is the first.")
    assert answer_types.names_absent("What was fixed in 3.7.1?", [at_the_end]) == []  # a full stop after it
    assert answer_types.names_absent("What was added in v2.4?", [at_the_end]) == []  # and "v2" is no code


def test_a_table_has_the_row_only_when_one_row_holds_each_name_whole():
    rows = ["4 | Chen Wei | Engineering | Warsaw", "5 | Vera Conti | Legal | Madrid"]
    context = "row | Name | Department | Office Staff staff"
    has = lambda question: answer_types.table_has_row(answer_types.asked_entities(question), rows, context)  # noqa: E731
    assert has("Which department does Chen Wei work in?")
    assert has("Who started earlier, Chen Wei or Vera Conti?")  # two names, one row each
    assert not has("Which department does Vera Wei work in?")  # both words are in the table, not in one row
    assert not has("Which department does Steelgate work in?")
    assert has("Which Office is Chen Wei in, per the Staff sheet?")  # a column and the sheet are named in the context


def test_missing_row_reads_the_table_of_the_best_covering_line_only():
    header = "row | Supplier | Lead time"
    line = lambda text, terms, cosine=0.5: V.Sentence(text, frozenset(terms), cosine, header, "Suppliers inventory")  # noqa: E731
    table = [line(header, {"supplier", "lead", "time"}), line("2 | Steelline | 56", {"steellin"}), line("3 | Camtech | 21", {"camtech"})]
    idf = {"lead": 2.0, "time": 1.0, "steelgat": 4.0, "camtech": 4.0}
    assert V.missing_row("What is the lead time of Steelgate?", {"lead", "time", "steelgat"}, table, idf, 4.0, lead=3)
    assert not V.missing_row("What is the lead time of Camtech?", {"lead", "time", "camtech"}, table, idf, 4.0, lead=3)
    assert not V.missing_row("What is the longest lead time?", {"longest", "lead", "time"}, table, idf, 4.0, lead=3)  # names nothing
    # the top passage is a table: its table is the one read, even when a prose sentence covers the question better
    prose_first = [V.Sentence("The lead time of every supplier is reviewed yearly.", frozenset({"lead", "time", "supplier"}), 0.9)]
    assert V.missing_row("What is the lead time of Steelgate?", {"lead", "time", "steelgat"}, table[1:] + prose_first, idf, 4.0, lead=2)
    assert not V.missing_row("What is the lead time of Steelgate?", {"lead", "time", "steelgat"}, prose_first + table[1:], idf, 4.0, lead=1)
    # a prose passage first and the table further down: the table is not what answers, so it is not read
    vague = V.Sentence("Deliveries usually take two weeks.", frozenset({"deliveri", "usual", "take", "two", "week"}), 0.6)
    assert not V.missing_row("What is the lead time of Steelgate?", {"lead", "time", "steelgat"}, [vague] + table, idf, 4.0, lead=1)
    prose = [V.Sentence("Steelline ships in 56 days.", frozenset({"steellin", "ship", "day"}), 0.5)]
    assert not V.missing_row("What is the lead time of Steelgate?", {"lead", "time", "steelgat"}, prose, idf, 4.0)  # not a table
    model = AnswerabilityModel(mean=(0.0, 0.0), scale=(1.0, 1.0), weights=(1.0, 1.0), bias=5.0)
    kept = V.assess(V.VerdictFeatures(1.0, 1.0), model, 0.5, 0.6)
    refused = V.assess(V.VerdictFeatures(1.0, 1.0), model, 0.5, 0.6, row_missing=True)
    assert kept.verdict == "found" and (refused.verdict, refused.confidence) == ("not_found", V.MISSING_ROW_CONFIDENCE)


def test_a_name_no_top_document_mentions_caps_the_confidence_below_found():
    model = AnswerabilityModel(mean=(0.0, 0.0), scale=(1.0, 1.0), weights=(1.0, 1.0), bias=5.0)
    capped = V.assess(V.VerdictFeatures(1.0, 1.0), model, 0.5, 0.6, names_absent=True)
    assert (capped.verdict, capped.confidence) == ("uncertain", V.NAME_ABSENT_CONFIDENCE)
    low = AnswerabilityModel(mean=(0.0, 0.0), scale=(1.0, 1.0), weights=(0.0, 0.0), bias=-3.0)
    assert V.assess(V.VerdictFeatures(1.0, 1.0), low, 0.5, 0.6, names_absent=True).confidence < 0.1  # a cap, never a lift


def test_thresholds_make_three_states():
    assert V.decide(0.9, 0.5, 0.65) == "found"
    assert V.decide(0.65, 0.5, 0.65) == "found"
    assert V.decide(0.6, 0.5, 0.65) == "uncertain"
    assert V.decide(0.5, 0.5, 0.65) == "uncertain"
    assert V.decide(0.49, 0.5, 0.65) == "not_found"
    assert V.decide(0.6, 0.7, 0.65) == "not_found"  # a found threshold below the answerable one never says found below it
    model = AnswerabilityModel(mean=(0.0, 0.0), scale=(1.0, 1.0), weights=(0.0, 0.0), bias=0.0)
    got = V.assess(V.VerdictFeatures(1.0, 0.4), model, 0.5, 0.65)
    assert got.verdict == "uncertain" and got.answerable and got.confidence == 0.5


def test_fit_takes_any_number_of_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    y = list(x[:, 0] + 0.5 * x[:, 2] > 0)
    model = fit([tuple(r) for r in x], y)
    assert len(model.weights) == 3 and model.weights[0] > model.weights[2] > abs(model.weights[1])
    with pytest.raises(ValueError):
        model.probability(1.0, 2.0)


def test_a_blend_weighs_the_two_probabilities_and_the_base_reads_only_its_own_features():
    base = AnswerabilityModel(mean=(0.0, 0.0), scale=(1.0, 1.0), weights=(1.0, -1.0), bias=0.0)  # reads x1 - x2
    extended = AnswerabilityModel(mean=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0), weights=(0.0, 0.0, 1.0), bias=0.0)  # reads x3
    features = (1.0, 0.0, 2.0)
    assert round(base.probability(1.0, 0.0), 4) == 0.7311  # 1 / (1 + e^-1): the first two features, not the last two
    assert round(extended.probability(*features), 4) == 0.8808  # 1 / (1 + e^-2)
    assert round(BlendedModel(base, extended, 0.0).probability(*features), 4) == 0.7311
    assert round(BlendedModel(base, extended, 1.0).probability(*features), 4) == 0.8808
    assert round(BlendedModel(base, extended, 0.6).probability(*features), 4) == round(0.4 * 0.7311 + 0.6 * 0.8808, 4) == 0.8209
    assert V.MODEL_VERIFIED_BLEND.as_dict()["blend"]["weight"] == V.VERIFIED_WEIGHT


# --- each state from a real query on the real index (questions not in the eval set) ----------------


def test_a_clearly_answered_question_is_found(service):
    result = service.query(service.parse("Who revised the theory of permanent revolution in 1984?", 3, "hybrid"))
    assert result.verdict == "found" and result.answerable and result.confidence >= V.FOUND_THRESHOLD
    assert result.features is not None and result.features.answer_type == 1.0


def test_an_off_topic_question_is_not_found(service):
    result = service.query(service.parse("How do I bake sourdough bread at home?", 3, "hybrid"))
    assert result.verdict == "not_found" and not result.answerable and result.confidence < V.ANSWERABLE_THRESHOLD
    assert result.hits, "the closest passages still come back"


def test_a_near_topic_fact_the_article_does_not_give_is_not_found(service):
    result = service.query(service.parse("Which newspaper did Trotsky edit?", 3, "hybrid"))
    assert result.verdict == "not_found" and not result.answerable
    assert result.features.relation_cos < 0.36, "with Trotsky masked, 'Which newspaper did edit' matches little"


@pytest.mark.parametrize("question", [
    "Who revised the theory of permanent revolution in 1984?", "How do I bake sourdough bread at home?",
    "Which newspaper did Trotsky edit?", "Why did Trotsky think the bourgeoisie could not lead?",
])
def test_a_real_verdict_is_its_confidence_read_against_the_thresholds(service, question):
    """Whatever a question's confidence, the verdict, `answerable` and the thresholds agree (a state is never
    decided apart from its confidence), on every mode."""
    for mode in ("hybrid", "dense", "lexical"):
        result = service.query(service.parse(question, 3, mode))
        assert result.verdict == V.decide(result.confidence, V.ANSWERABLE_THRESHOLD, V.FOUND_THRESHOLD), (mode, result.confidence)
        assert result.answerable == (result.verdict != "not_found")
        assert 0.0 <= result.confidence <= 1.0


def test_the_uncertain_example_is_uncertain(service):
    """UNCERTAIN stands for the middle state in the transport tests (tests/api/test_verdict_transports.py):
    a question the article's words surround but never answer."""
    result = service.query(service.parse(UNCERTAIN, 3, "hybrid"))
    assert result.verdict == "uncertain" and result.answerable


UNCERTAIN = "How old was Trotsky in 1917?"  # the article names him and 1917 again and again, never his age (confidence ~0.54)


@pytest.mark.parametrize("mode", ["dense", "lexical"])
def test_every_mode_gives_a_verdict(service, mode):
    answered = service.query(service.parse("Who revised the theory of permanent revolution in 1984?", 3, mode))
    assert answered.verdict == "found", answered.confidence  # the article says it plainly: every mode finds it
    off_topic = service.query(service.parse("How do I bake sourdough bread at home?", 3, mode))
    assert off_topic.verdict == "not_found", off_topic.confidence
    nothing = service.query(service.parse("zzzz qqqq", 3, mode))  # lexical finds no passage at all: still a verdict, no crash
    assert nothing.verdict == "not_found"
