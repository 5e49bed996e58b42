"""Composing one email from a design: a snippet is escaped in HTML and not in text."""

from __future__ import annotations

from envoi.templates.compiled import CompiledTemplate
from envoi.templates.design import Design

EMAIL = {
    "from": "a@example.com",
    "subject": "{{ ctx.a }}",
    "html": "<p>{% render 'f' %}</p>",
    "text": "{% render 'f' %}",
}


def test_a_snippet_is_escaped_in_html_and_not_in_text_in_the_same_email() -> None:
    compiled = CompiledTemplate(Design(content=EMAIL, snippets={"f": "{{ ctx.a }} & co", "unused": "x"}))
    for _ in range(2):  # the second time from the parsed-snippet cache
        rendered = compiled.render({"ctx": {"a": "<Ann>"}})
        assert rendered.html == "<p>&lt;Ann&gt; & co</p>"
        assert rendered.text == "<Ann> & co"
        assert rendered.subject == "<Ann>"
    assert compiled.liquid.used_snippets == {"f"}
