"""The ctx XML -> JSON mapping: worked examples, and a round trip over every shape it can produce."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from envoi.soap.xml import ctx_to_json, json_to_element, parse_document


def test_adobe_example() -> None:
    ctx = parse_document(b'<ctx><customer lastName="Doe"><city>Lyon</city></customer></ctx>')
    assert ctx_to_json(ctx) == {"customer": {"@lastName": "Doe", "city": "Lyon"}}


def test_repeated_elements_become_lists_and_text_beside_attributes_is_kept() -> None:
    ctx = parse_document(
        b'<ctx xmlns:a="urn:x"><item sku="1">Pen</item><item sku="2">Ink</item><a:note>hi</a:note><empty/></ctx>'
    )
    assert ctx_to_json(ctx) == {
        "item": [{"@sku": "1", "#text": "Pen"}, {"@sku": "2", "#text": "Ink"}],
        "note": "hi",
        "empty": "",
    }


names = st.from_regex(r"[a-z][a-zA-Z0-9]{0,8}", fullmatch=True)
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12).filter(str.strip)


def nodes(depth: int) -> st.SearchStrategy[Any]:
    """Values the mapping produces: a string leaf, or an object of attributes, children and lists of 2+."""
    if depth == 0:
        return texts
    child = nodes(depth - 1)
    return st.one_of(
        texts,
        st.builds(
            lambda attributes, kids: {**{"@" + k: v for k, v in attributes.items()}, **kids},
            st.dictionaries(names, texts, max_size=3),
            st.dictionaries(names, st.one_of(child, st.lists(child, min_size=2, max_size=3)), min_size=1, max_size=3),
        ),
    )


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(names, st.one_of(nodes(2), st.lists(nodes(1), min_size=2, max_size=3)), max_size=4))
def test_json_to_xml_and_back_is_the_identity(ctx: dict[str, Any]) -> None:
    xml = etree.tostring(json_to_element("ctx", ctx))
    assert ctx_to_json(parse_document(xml)) == ctx
