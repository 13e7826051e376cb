"""The page as served (GET /), without a browser: what it takes from the server's settings, and that it
loads nothing from elsewhere. How it behaves in a browser: tests/api/test_web.py."""

from __future__ import annotations

import json
import re
from fastapi.testclient import TestClient

from api.app import create_app
from api.routers import page as page_module
from api.routers.page import BUNDLED_DOCUMENT, CONFIG_SLOT, STATIC_DIR, render_page
from rag.config import MODES, Mode, Settings

CONFIG_BLOCK = re.compile(r'<script type="application/json" id="page-config">(.*?)</script>', re.S)


def _config(html: str) -> dict:
    blocks = CONFIG_BLOCK.findall(html)
    assert len(blocks) == 1, blocks
    return json.loads(blocks[0])


def test_the_page_takes_modes_and_defaults_from_the_settings(service):
    custom = service.settings.model_copy(update={"default_mode": Mode.LEXICAL, "default_top_k": 3, "max_top_k": 7})
    with TestClient(create_app(settings=custom, service=service)) as client:
        response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    config = _config(response.text)
    assert config["modes"] == list(MODES) and config["default_mode"] == "lexical"
    assert (config["default_top_k"], config["max_top_k"]) == (3, 7)
    assert config["bundled"]["document"] == BUNDLED_DOCUMENT
    assert CONFIG_SLOT not in response.text
    # nothing of the kind is left in the page's own code: it reads the block
    script = response.text.split('id="page-config">', 1)[1].split("</script>", 1)[1]
    assert '"hybrid", "dense"' not in script and "MAX_TOP_K = 50" not in script
    assert not re.search(r'<option value="(hybrid|dense|lexical)"', response.text)  # options are built from the config


def test_the_stricter_check_is_offered_only_where_a_question_may_ask_for_the_verifier():
    assert page_module.page_config(Settings())["verifier"] == {"default": False, "on_request": True}
    assert page_module.page_config(Settings(verifier=True))["verifier"] == {"default": True, "on_request": True}
    assert page_module.page_config(Settings(verify_on_request=False))["verifier"]["on_request"] is False
    assert page_module.page_config(Settings(model="some/other-model", verifier=True))["verifier"]["on_request"] is False


def test_the_bundled_article_id_is_the_one_in_seeds(service):
    assert BUNDLED_DOCUMENT in service.documents  # the session serves the bundled seeds/
    assert (Settings().seeds_dir / f"{BUNDLED_DOCUMENT}.txt").is_file()


def test_a_value_cannot_close_the_config_block(monkeypatch):
    hostile = '</script><script>alert("x")</script><!--'
    monkeypatch.setattr(page_module, "BUNDLED_EXAMPLE", hostile)
    html = render_page(Settings())
    assert html.count("</script>") == (STATIC_DIR / "index.html").read_text(encoding="utf-8").count("</script>")
    assert _config(html)["bundled"]["example"] == hostile  # escaped in the markup, the same string to the script


def test_the_page_loads_nothing_from_another_host():
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    # every src/href is this server's own ("/...", "#...", "data:"), built in code from the API, or a document's own
    # `url` (the "Original publication" link, made from API data at run time, never in the markup)
    for attribute, value in re.findall(r'\b(src|href)\s*=\s*"([^"]*)"', html):
        assert value.startswith(("/", "#", "data:")), (attribute, value)
    assert not re.search(r"https?://", html.split("<script>", 1)[0]), "the markup names another host"
    assert "@import" not in html and "url(http" not in html
