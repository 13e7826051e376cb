"""The web page (GET /) in a real browser: Debian's Chromium, headless, driven by Playwright.

Against a live uvicorn: ask with the keyboard, read cited passages with the best
sentence highlighted, open one in its document (highlighted, scrolled into view),
share a search by URL, and see plain messages for unanswerable questions and errors,
on a desktop and a phone-sized screen; the three verdicts in three styles, each
readable (contrast), in light and dark mode; and, on a corpus of several documents
served with other settings, a neutral example, "the documents", and the modes and
default `top_k` of those settings.

Skipped only when /usr/bin/chromium is missing outside CI (`make test` installs it);
with CI=true a missing browser fails the run instead.
"""

import os
import re
import socket
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from api.app import create_app
from rag.config import MODES, Mode
from rag.service import Service
from tests.query.test_verdict import UNCERTAIN
from tests.reliability_support import settings_for, write_tiny_seeds

pytestmark = pytest.mark.slow  # live servers, subprocesses, browsers or whole-set runs: `make test`, not `make test-fast`

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MORENO_QUESTION = "Who revised the theory of permanent revolution in 1984?"
MORENO_SENTENCE = "Nahuel Moreno revised the theory of permanent revolution in 1984."
PHONE = {"width": 390, "height": 844}

if not CHROMIUM.exists():
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing: the browser tests must run in CI (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium, or `make test`)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1000, "height": 800}, base_url=live_server)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    yield page
    context.close()
    assert not [p for p in problems if "status of 422" not in p and "status of 404" not in p], problems


@pytest.fixture(scope="module")
def other_server(tmp_path_factory, encoders):
    """A live uvicorn over two documents that are not the bundled article, with other defaults than the usual."""
    import uvicorn

    root = tmp_path_factory.mktemp("other-corpus")
    seeds = write_tiny_seeds(root / "seeds", extra_doc="Garden notes\n\nTomatoes need full sun and steady watering.\n")
    settings = settings_for(seeds, root / "index", default_mode=Mode.LEXICAL, default_top_k=3, max_top_k=7)
    service = Service.open(settings, encoders)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(service=service), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="other-uvicorn")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the second live uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", service
    server.should_exit = True
    thread.join(10)
    sock.close()


def _luminance(css: str) -> float:
    red, green, blue = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two computed CSS colours ("rgb(r, g, b)")."""
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def verdict_style(page) -> dict:
    return page.locator("#verdict").evaluate(
        "el => { const s = getComputedStyle(el); return {class: el.className, color: s.color, "
        "background: s.backgroundColor, edge: `${s.borderLeftStyle} ${s.borderLeftColor}`}; }"
    )


def no_horizontal_scroll(page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"page is {widths[0]}px wide in a {widths[1]}px viewport"


def ask_with_keyboard(page, question: str) -> None:
    page.goto("/")
    box = page.get_by_label("Your question")
    box.focus()
    if len(question) > 200:
        box.fill(question)  # typing thousands of keys one by one proves nothing more
    else:
        page.keyboard.type(question)
    page.keyboard.press("Enter")


def test_ask_read_and_open_in_context_with_the_keyboard(page, service, live_server):
    expected = service.query(service.parse(MORENO_QUESTION, 5, "hybrid")).hits[0]
    citation = expected.passage

    ask_with_keyboard(page, MORENO_QUESTION)
    # the bundled article alone: its own example question, and "the document"
    expect(page.get_by_label("Your question")).to_have_attribute("placeholder", "e.g. Who revised the theory of permanent revolution?")
    expect(page.locator("#q-hint")).to_contain_text("quoted from the document,")
    first = page.locator("ol.results > li").first
    expect(first).to_be_visible()
    expect(page.locator("#results-heading")).to_have_text("Answer passages")
    expect(page.locator("#verdict")).to_contain_text("Found: these passages likely answer the question (confidence")
    expect(page.locator("ol.results > li")).to_have_count(5)
    # the search is in the URL, so it can be shared
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"q": [MORENO_QUESTION], "mode": ["hybrid"], "top_k": ["5"]}
    # the passage, its best sentence highlighted, and its citation
    expect(first.locator("blockquote")).to_have_text(citation.text)
    expect(first.locator("mark.best")).to_have_text(MORENO_SENTENCE)
    cite = first.locator(".cite")
    expect(cite).to_contain_text("The Theory Negated")
    expect(cite).to_contain_text(f"paragraph {citation.paragraphs[0]}")
    expect(cite).to_contain_text(f"characters {citation.start:,}–{citation.end:,}")

    # Tab from the question box reaches the first "Read in context" link; Enter follows it
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('in-context')"):
            break
    else:
        pytest.fail("the 'Read in context' link is not reachable with Tab")
    assert page.evaluate("document.activeElement.dataset.passage") == citation.id
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(rf"/\?passage={citation.id}"))
    marks = page.locator("#document mark.passage")
    expect(marks.first).to_be_in_viewport()
    assert re.sub(r"\s+", "", "".join(marks.all_text_contents())) == re.sub(r"\s+", "", citation.text)
    expect(page.locator("#document mark.best")).to_have_text(MORENO_SENTENCE)
    expect(page.locator("#document mark.best")).to_be_in_viewport()
    expect(page.locator("#document h3", has_text="The Theory Negated")).to_have_count(1)
    expect(page.locator("#passage-card")).to_contain_text(f"characters {citation.start:,}–{citation.end:,}")
    # the whole document is there, headings and all, and the document's other text is not marked
    assert page.locator("#document h3").count() == sum(1 for s in service.documents[citation.document].sections if s.title)

    # back to the results, as the browser's Back button does
    expect(page.locator("#back")).to_have_text("← Back to results")
    page.locator("#back").click()
    expect(page.locator("ol.results > li").first).to_be_visible()
    assert "q=" in page.url


def test_a_shared_passage_link_opens_it_in_context(page, service):
    hit = service.query(service.parse("What did Lenin's April Theses argue?", 1, "hybrid")).hits[0]
    page.goto(f"/?passage={hit.passage.id}")  # the link MCP results carry
    mark = page.locator("#document mark.passage").first
    expect(mark).to_be_in_viewport()
    expect(page.locator("#document mark.best")).to_have_count(0)  # no question, so no best sentence
    expect(page.locator("#back")).to_have_text("← Ask a question")


def test_a_shared_search_url_restores_mode_and_count(page):
    page.goto("/?" + "q=permanent+revolution&mode=lexical&top_k=2")
    expect(page.locator("ol.results > li")).to_have_count(2)
    expect(page.get_by_label("Search by")).to_have_value("lexical")
    expect(page.get_by_label("Passages", exact=True)).to_have_value("2")
    expect(page.get_by_label("Your question")).to_have_value("permanent revolution")


def test_the_stricter_check_asks_for_the_verifier_and_is_shared_in_the_url(page, service):
    question = "Who revised the theory of permanent revolution?"
    verified = service.query(service.parse(question, 5, "hybrid", verify=True))
    page.goto("/")
    page.get_by_label("Your question").fill(question)
    page.get_by_label("Stricter check").check()
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#verdict")).to_contain_text("Checked by the verifier.")
    expect(page.locator("#verdict")).to_contain_text(f"confidence {round(verified.confidence * 100)}%")
    assert parse_qs(urlsplit(page.url).query)["verify"] == ["1"]
    page.goto("/?" + "q=permanent+revolution&mode=hybrid&top_k=2&verify=1")  # a shared link keeps the check
    expect(page.get_by_label("Stricter check")).to_be_checked()
    expect(page.locator("#verdict")).to_contain_text("Checked by the verifier.")
    page.goto("/?" + "q=permanent+revolution&mode=hybrid&top_k=2")
    expect(page.get_by_label("Stricter check")).not_to_be_checked()
    expect(page.locator("ol.results > li")).to_have_count(2)
    expect(page.locator("#verdict")).not_to_contain_text("verifier")


def test_unanswerable_question_says_so_and_shows_closest_passages(page):
    ask_with_keyboard(page, "What is the best recipe for banana bread?")
    note = page.locator("#verdict")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Not found: the document does not seem to answer this question (confidence")
    expect(page.locator("#results-heading")).to_have_text("Closest passages")
    expect(page.locator("ol.results > li").first).to_be_visible()


def test_an_uncertain_verdict_is_said_in_words(page, service):
    question = UNCERTAIN  # named by the article, never answered by it: the verdict hesitates
    assert service.query(service.parse(question)).verdict == "uncertain"
    ask_with_keyboard(page, question)
    expect(page.locator("#verdict")).to_contain_text("Uncertain: the document may not answer this (confidence")
    expect(page.locator("#results-heading")).to_have_text("Answer passages")


def test_errors_are_shown_plainly(page):
    ask_with_keyboard(page, "why " * 600)  # 2,400 characters: over the API's limit
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Could not search")
    expect(error).to_contain_text("at most 2000 characters")
    expect(page.locator("#results")).to_be_hidden()

    page.goto("/?passage=0000000000000000")
    expect(page.locator("#error")).to_contain_text("no passage with id")


def test_phone_screen_has_no_horizontal_scroll(browser, live_server):
    context = browser.new_context(viewport=PHONE, base_url=live_server, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        ask_with_keyboard(page, MORENO_QUESTION)
        expect(page.locator("ol.results > li").first).to_be_visible()
        no_horizontal_scroll(page)
        page.locator("a.in-context").first.click()
        expect(page.locator("#document mark.passage").first).to_be_in_viewport()
        no_horizontal_scroll(page)
    finally:
        context.close()


def test_the_three_verdicts_look_different_and_stay_readable(page, service):
    styles = {}
    for verdict, question in (("found", MORENO_QUESTION), ("uncertain", UNCERTAIN), ("not_found", "What is the best recipe for banana bread?")):
        ask_with_keyboard(page, question)
        expect(page.locator("#verdict")).to_have_class(f"note verdict-{verdict}")
        styles[verdict] = {"light": verdict_style(page)}
        page.emulate_media(color_scheme="dark")
        styles[verdict]["dark"] = verdict_style(page)
        page.emulate_media(color_scheme="light")
    for scheme in ("light", "dark"):
        seen = [styles[v][scheme] for v in styles]
        assert len({s["background"] for s in seen}) == 3 and len({s["edge"] for s in seen}) == 3, seen  # colour and edge
        for verdict in styles:
            style = styles[verdict][scheme]
            assert contrast(style["color"], style["background"]) >= 4.5, (verdict, scheme, style)  # WCAG AA, body text


def test_another_corpus_gets_a_neutral_example_plural_words_and_its_own_settings(browser, other_server):
    base, service = other_server
    assert len(service.documents) == 2
    context = browser.new_context(viewport={"width": 1000, "height": 800}, base_url=base)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto("/")
        expect(page.locator("#corpus")).to_have_text("Searching 2 documents.")
        box = page.get_by_label("Your question")
        expect(box).to_have_attribute("placeholder", "Type a question in plain words")
        expect(page.locator("#q-hint")).to_contain_text("quoted from the documents,")
        mode = page.get_by_label("Search by")
        assert mode.locator("option").evaluate_all("options => options.map(o => o.value)") == list(MODES)
        expect(mode).to_have_value("lexical")  # RAG_DEFAULT_MODE of this server
        top_k = page.get_by_label("Passages", exact=True)
        expect(top_k).to_have_value("3")
        expect(top_k).to_have_attribute("max", "7")

        box.fill("What is the best recipe for banana bread?")
        page.keyboard.press("Enter")
        expect(page.locator("#verdict")).to_contain_text("Not found: the documents do not seem to answer this question")
        expect(page.locator("#verdict")).to_contain_text("the closest passages they have")
        box.fill("Trotsky and the revolution")
        page.keyboard.press("Enter")
        expect(page.locator("ol.results > li")).to_have_count(3)  # this server's default top_k
        assert parse_qs(urlsplit(page.url).query) == {"q": ["Trotsky and the revolution"], "mode": ["lexical"], "top_k": ["3"]}

        top_k.fill("8")
        page.keyboard.press("Enter")  # from the number box: the form submits
        expect(page.locator("#error")).to_contain_text("from 1 to 7")
    finally:
        context.close()
