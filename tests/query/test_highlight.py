"""The highlight (rag.query.highlight): the answer, not the text's own question or a lead-in; two sentences when it spans two."""

from rag.query import highlight as H

from tests.conftest import ARTICLE_ID


def candidate(text: str, cosine: float, coverage: float = 0.0, typed: bool = False, at: int = 0) -> H.Candidate:
    return H.Candidate(text, at, at + len(text), cosine, coverage, typed)


def test_the_texts_own_question_is_skipped():
    sentences = [
        candidate("Why was the Russian bourgeoisie unable to lead the bourgeois revolution?", 0.70, 0.6),
        candidate("The bourgeoisie had strong economic ties with the landowners, who were their partners in profit.", 0.55, 0.3),
        candidate("Pushing for land reform meant going after the possessions of the landed aristocracy.", 0.40),
    ]
    best, marked = H.choose(sentences)
    assert best == 1 and 0 not in marked


def test_an_faq_question_that_wins_on_its_words_gives_way_to_its_answer():
    """"Q: Can I hire a bike?" holds every word of "Can I hire a bike in Leeds?", and beat its answer even with the
    question penalty; the highlight is the best sentence of what follows it, up to the next question."""
    sentences = [
        candidate("Q: Can I hire a bike?", 0.92, 0.8),
        candidate("A: Yes.", 0.20),
        candidate("Day hire of a City Commuter 200 costs £18; a week costs £70.", 0.45, 0.2),
        candidate("Hire is only available in Bristol.", 0.50, 0.3),
        candidate("Q: Do you repair electric bikes?", 0.40, 0.1),
        candidate("A: Only the Leeds workshop repairs e-bikes.", 0.55, 0.2),
    ]
    best, marked = H.choose(sentences)
    assert best == 3 and 0 not in marked and 5 not in marked  # never the next question's answer
    assert H.choose(sentences[:1]) == (0, (0,))  # a question with nothing after it in the passage stays


def test_in_a_table_the_row_that_names_what_is_asked_wins_over_its_header_and_neighbours():
    """"Who owns action item PM-102?": the header line holds "owner" and "item", the PM-103 row reads alike; the
    header answers nothing and the row that holds PM-102 whole is the answer."""
    header = H.Candidate("ID | Action | Owner | Due", 0, 24, 0.55, 0.5, header=True)
    wanted = H.Candidate("PM-102 | Add an alert on replication lag | Tomás Silva | 2025-08-01", 25, 90, 0.50, 0.3, row_named=True)
    other = H.Candidate("PM-103 | Write the failover runbook | Tomás Ruiz | 2025-08-15", 91, 150, 0.54, 0.2)
    best, _ = H.choose([header, wanted, other])
    assert best == 1
    assert H.choose([header, H.Candidate(wanted.text, 25, 90, 0.50, 0.3), other])[0] == 2  # without the name: the closest row


def test_a_question_with_a_footnote_is_still_a_question():
    assert H.is_question("Why was it so? [3]") and H.is_question("“Why?”") and not H.is_question("It was so.")


def test_a_lead_in_marks_what_it_introduces():
    sentences = [
        candidate("In the 1919 re-issue of Results and Prospects, he explains:", 0.60, 0.5),
        candidate("“Once in power, the proletariat will not be able to limit itself to a bourgeois democratic program.”", 0.58, 0.2),
    ]
    assert H.is_transitional(sentences[0])
    best, marked = H.choose(sentences)
    assert best == 1 and marked == (1,)  # the quote wins on its own once the lead-in is pushed down
    sentences[1] = candidate(sentences[1].text, 0.20)
    best, marked = H.choose(sentences)
    assert best == 0 and marked == (0, 1)  # and where the lead-in still wins, what it introduces is marked with it


def test_a_short_sentence_sharing_nothing_with_the_question_is_transitional():
    assert H.is_transitional(candidate("However, there is more.", 0.3, 0.0))
    assert not H.is_transitional(candidate("However, there is more.", 0.3, 0.2))
    assert not H.is_transitional(candidate("A long sentence that carries a claim of its own about the revolution.", 0.3))


def test_evidence_spanning_two_adjacent_sentences_marks_both():
    sentences = [
        candidate("Unrelated opening sentence about the print edition of the magazine.", 0.10),
        candidate("Mao led a wing of the CCP to retreat to the countryside.", 0.61, 0.5),
        candidate("The Long March demonstrated the prowess that allowed the CCP to survive.", 0.60, 0.5),
    ]
    best, marked = H.choose(sentences)
    assert best == 1 and marked == (1, 2)
    sentences[2] = candidate(sentences[2].text, 0.40)
    assert H.choose(sentences) == (1, (1,))  # a clearly weaker neighbour is not marked


def test_the_asked_for_type_and_the_question_terms_pull_the_highlight():
    assert H.holds_answer_type("Who revised the theory?", "Nahuel Moreno revised the theory in 1984.")
    assert not H.holds_answer_type("Who revised the theory?", "It was revised, he said.")
    assert H.holds_answer_type("When was it revised?", "It was revised in 1984.")
    assert not H.holds_answer_type("Why was it revised?", "It was revised in 1984.")
    sentences = [candidate("A sentence close in meaning.", 0.60), candidate("A sentence holding the rare question term.", 0.55, 0.5)]
    assert H.choose(sentences)[0] == 1


def test_the_readme_question_highlights_an_answer_not_the_articles_question(service):
    result = service.query(service.parse("Why did Trotsky think the bourgeoisie could not lead?", 3, "hybrid"))
    doc = service.document(ARTICLE_ID).text
    for hit in result.hits:
        assert not H.is_question(hit.highlight.text)
        assert hit.highlight in hit.highlights and list(hit.highlights) == sorted(hit.highlights, key=lambda h: h.start)
        for h in hit.highlights:
            assert doc[h.start : h.end] == h.text and hit.passage.start <= h.start < h.end <= hit.passage.end
        if len(hit.highlights) == 2:
            first, second = hit.highlights
            assert doc[first.end : second.start].strip() == "", "two marked sentences are adjacent"


def candidate_of(text: str, cosine: float, coverage: float = 0.0, typed: bool = False, names: bool = False) -> H.Candidate:
    return H.Candidate(text, 0, len(text), cosine, coverage, typed, names)


def test_a_sentence_that_refers_back_is_read_with_the_one_it_refers_to():
    # the answer points back at the event ("This outcome") and so is further from the question on its own
    sentences = [
        candidate("The Shanghai Massacre, in which thousands of communists were slaughtered, was only a harbinger.", 0.66, 0.29),
        candidate("This outcome was foreseeable, however, and could have been prevented by refusing the alliance.", 0.48, 0.33),
        candidate("It confirmed, as well, that the bourgeoisie cannot be an ally.", 0.28),
    ]
    assert H.refers_back(sentences[1].text) and not H.refers_back(sentences[0].text)
    best, marked = H.choose(sentences)
    assert best == 1 and marked == (0, 1)  # the answer wins on its own terms; what it refers to is marked with it
    sentences[1] = candidate(sentences[1].text, 0.48, 0.20)
    assert H.choose(sentences)[0] == 0  # read with the event, it still needs more of the question's terms to win
    sentences[1] = candidate("The outcome was foreseeable, however, and could have been prevented by refusing the alliance.", 0.48, 0.33)
    assert H.choose(sentences)[0] == 0  # a sentence that does not point back keeps its own cosine


def test_a_sentence_does_not_refer_back_to_the_texts_own_question():
    sentences = [
        candidate("Why was the Russian bourgeoisie unable to lead the revolution?", 0.70, 0.2),
        candidate("It had strong economic ties with the landowners, its partners in profit.", 0.40, 0.3),
        candidate("The landed aristocracy guaranteed those profits and the bourgeoisie knew it.", 0.50, 0.2),
    ]
    assert not H.read_with_previous(sentences, 1)
    assert H.choose(sentences) == (2, (2,))  # read with the question it would have won (0.70 + 0.09)


def test_an_explanation_is_the_asked_for_type_of_a_why_question():
    question = "Why shouldn't socialists lend political support to the Syrian rebels?"
    explains = "Lending political support to them means settling for a program that advances a liberal capitalist state."
    assert H.holds_answer_type(question, explains)
    assert H.holds_answer_type("Why did the party stop the peasants?", "It did so because it wanted an alliance.")
    assert not H.holds_answer_type(question, "The Syrian revolution has mutated into a constellation of armed groups.")
    assert not H.holds_answer_type("What did the party stop?", "It did so because it wanted an alliance.")
    sentences = [
        candidate("An example of this is the call to support the rebels in Syria.", 0.53, 0.29),
        candidate(explains, 0.46, 0.34, typed=H.holds_answer_type(question, explains)),
    ]
    assert H.choose(sentences)[0] == 1
    sentences[1] = candidate(explains, 0.46, 0.34)
    assert H.choose(sentences)[0] == 0  # without the explanation bonus the closer sentence wins


def test_a_naming_question_is_answered_where_the_name_is_given():
    question = "What is the name of the law describing the mix of feudal property relations and modern industry?"
    naming = "This phenomenon, famously theorized by Trotsky and termed the law of uneven and combined development, mattered."
    setup = "This caused a combination of feudal social-property relations with an incipient industry."
    assert H.gives_asked_name(question, naming) and not H.gives_asked_name(question, setup)
    assert H.gives_asked_name("What did Trotsky call the theory?", "He called it permanent revolution.")
    assert not H.gives_asked_name("Does it deserve to be called a theory?", "It is called a theory.")  # not a what/which question
    assert not H.gives_asked_name("What did the party call for?", "It called for land reform.")
    assert not H.gives_asked_name("What did the party want?", "It was termed the law of uneven development.")
    assert H.gives_asked_name("Which term did Trotsky use for it?", "It was called combined development.")
    assert not H.gives_asked_name("What did Trotsky do in his second term?", "It was called a term.")  # "term" as a period
    assert not H.gives_asked_name("What is the name of the law?", "He was named chairman.")  # "named" alone: too common a verb
    sentences = [
        candidate_of(setup, 0.63, 0.33),
        candidate_of(naming, 0.32, 0.10, names=True),
        candidate_of("Russia would not have to follow the same path as England.", 0.28, names=True),
    ]
    assert H.choose(sentences)[0] == 1
    sentences[1] = candidate_of(naming, 0.32, 0.0, names=True)
    assert H.choose(sentences)[0] == 0  # a name with none of the question's terms is some other name
    sentences[1] = candidate_of(naming, 0.32, 0.10)
    assert H.choose(sentences)[0] == 0
