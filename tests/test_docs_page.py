"""`/docs` works on a network without internet: every file it loads is this server's, and no script is inline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from scribe.api.app import create_app
from scribe.api.docs import CONTENT_SECURITY_POLICY
from scribe.config import Settings

CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",), ".png": ("image/png",)}


class Page(HTMLParser):
    """The URLs a page loads (src, href) and the text of its script elements."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("docs"), secret_key="d" * 40)
    with TestClient(create_app(settings, load_asr=False)) as test_client:
        yield test_client


def read(client, path: str = "/docs") -> tuple[object, Page]:
    response = client.get(path)
    page = Page()
    page.feed(response.text)
    return response, page


def test_docs_loads_only_same_origin_files_and_no_inline_script(client):
    response, page = read(client)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert not re.search(r"https?://", response.text)  # no other host, no CDN
    assert page.scripts and all(script.strip() == "" for script in page.scripts)
    assert {urlsplit(url).path.rsplit("/", 1)[-1] for url in page.urls} == {
        "favicon.png",
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "init.js",
    }
    for url in page.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        suffix = "." + url.rsplit(".", 1)[-1]
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].split(";")[0] in CONTENT_TYPES[suffix], url
    assert "SwaggerUIBundle(" in client.get("/static/docs/init.js").text
    assert 'data-openapi-url="/openapi.json"' in response.text and client.get("/openapi.json").status_code == 200


def test_docs_behind_a_path_prefix_points_at_the_prefix(tmp_path):
    """Behind a proxy serving scribe under /scribe, the page's URLs carry the prefix."""
    app = create_app(Settings(data_dir=tmp_path, secret_key="d" * 40), load_asr=False)
    with TestClient(app, root_path="/scribe") as prefixed:
        _, page = read(prefixed)
    assert page.urls and all(url.startswith("/scribe/static/docs/") for url in page.urls)


def test_fastapis_cdn_pages_are_gone(client):
    assert client.get("/redoc").status_code == 404 and client.get("/docs/oauth2-redirect").status_code == 404
