"""Adobe Campaign JST to Liquid: expressions converted, everything else kept visible, the result always compiles."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envoi.templates.adobe import Conversion, jst_to_liquid
from envoi.templates.rendering import Liquid

CTX: dict[str, Any] = {
    "customer": {"@firstName": "Jane", "@lastName": "O'Neil <b>"},
    "account": {"label": "Gold"},
    "order": {"@id": "A-1001", "@date": "2024-05-01", "ship-to": {"city": "Lyon"}},
    "true": {"size": "XL"},
}
EVENT: dict[str, Any] = {
    "id": 42,
    "type": "order_confirmation",
    "email": "jane+shop@example.com",
    "mobilePhone": "+33600000000",
    "externalId": "ext-7",
    "origin": "web",
    "language": "fr",
}


def convert(source: str) -> Conversion:
    conversion = jst_to_liquid(source)
    Liquid().compile(conversion.liquid, field="email.html", html=True)  # raises TemplateSyntaxError if broken
    return conversion


def render(liquid: str, *, html: bool = True) -> str:
    return Liquid().compile(liquid, field="email.html", html=html).render(ctx=CTX, event=EVENT)


@pytest.mark.parametrize(
    ("jst", "liquid"),
    [
        ("<%= rtEvent.ctx.account.label %>", "{{ ctx.account.label }}"),
        ("<%= batchEvent.ctx.account.label %>", "{{ ctx.account.label }}"),
        ("<%=rtEvent.ctx.customer.@lastName%>", '{{ ctx.customer["@lastName"] }}'),
        ("<%=\n  rtEvent . ctx . customer . @lastName\n%>", '{{ ctx.customer["@lastName"] }}'),
        ("<%= rtEvent.ctx.order.ship-to.city %>", '{{ ctx.order["ship-to"].city }}'),
        ("<%= rtEvent.ctx.true.size %>", '{{ ctx["true"].size }}'),  # a Liquid keyword is no dotted name
        ("<%= rtEvent.ctx.items.item[0].@sku %>", '{{ ctx.items.item[0]["@sku"] }}'),
    ],
)
def test_ctx_paths_become_liquid_variables(jst: str, liquid: str) -> None:
    conversion = convert(jst)
    assert conversion == Conversion(liquid=liquid, unconverted=[])


def test_ctx_paths_render_the_event_data() -> None:
    source = (
        "<%= rtEvent.ctx.account.label %>|<%= rtEvent.ctx.customer.@firstName %>|"
        "<%= rtEvent.ctx.order.ship-to.city %>|<%= rtEvent.ctx.true.size %>|<%= rtEvent.ctx.missing.@x %>"
    )
    assert render(convert(source).liquid) == "Gold|Jane|Lyon|XL|"


def test_escape_xml_string_relies_on_autoescape_and_escapes_once() -> None:
    conversion = convert("<p><%= escapeXMLString(rtEvent.ctx.customer.@lastName) %></p>")
    assert conversion.liquid == '<p>{{ ctx.customer["@lastName"] }}</p>'
    assert render(conversion.liquid) == "<p>O&#39;Neil &lt;b&gt;</p>"
    assert render(conversion.liquid, html=False) == "<p>O'Neil <b></p>"


def test_encode_uri_component_becomes_url_encode() -> None:
    conversion = convert(
        '<a href="?id=<%= encodeURIComponent( rtEvent.ctx.order.@id ) %>'
        '&amp;e=<%= encodeURIComponent(rtEvent.email) %>">'
    )
    assert (
        conversion.liquid == '<a href="?id={{ ctx.order["@id"] | url_encode }}&amp;e={{ event.email | url_encode }}">'
    )
    assert render(conversion.liquid) == '<a href="?id=A-1001&amp;e=jane%2Bshop%40example.com">'


def test_case_methods_become_filters_in_order() -> None:
    conversion = convert(
        "<%= rtEvent.ctx.account.label.toUpperCase() %> <%= escapeXMLString(rtEvent.ctx.account.label).toLowerCase() %>"
        " <%= encodeURIComponent(rtEvent.ctx.order.@id).toLowerCase() %>"
    )
    assert conversion.unconverted == []
    assert conversion.liquid == (
        "{{ ctx.account.label | upcase }} {{ ctx.account.label | downcase }}"
        ' {{ ctx.order["@id"] | url_encode | downcase }}'
    )
    assert render(conversion.liquid) == "GOLD gold a-1001"


@pytest.mark.parametrize("field", ["externalId", "email", "mobilePhone", "language", "origin", "type"])
def test_event_fields_become_event_variables(field: str) -> None:
    conversion = convert(f"<%= rtEvent.{field} %>")
    assert conversion == Conversion(liquid=f"{{{{ event.{field} }}}}", unconverted=[])
    assert render(conversion.liquid) == str(EVENT[field])


@pytest.mark.parametrize(
    "jst",
    [
        '<% if (rtEvent.ctx.account.label == "Gold") { %>',
        "<% } %>",
        "<%if(a){%>",
        '<%@ include view="header" %>',
        "<%= recipient.firstName %>",
        "<%= rtEvent.ctx %>",
        "<%= rtEvent.id %>",
        '<%= formatDate(rtEvent.ctx.order.@date, "%2D/%2M/%4Y") %>',
        "<%= rtEvent.ctx.a + rtEvent.ctx.b %>",
        "<%= escapeXMLString(rtEvent.ctx.a) + escapeXMLString(rtEvent.ctx.b) %>",
        "<%=  %>",
        "<%-- a JST comment --%>",
    ],
)
def test_anything_else_stays_visible_as_a_comment(jst: str) -> None:
    conversion = convert(f"a{jst}b")
    assert conversion.unconverted == [jst]
    assert conversion.liquid == f"a{{% comment %}}unconverted JST: {jst}{{% endcomment %}}b"
    assert render(conversion.liquid) == "ab"


def test_unconverted_snippets_are_listed_verbatim_in_order() -> None:
    source = "<% var x = 1; %><%= rtEvent.email %><%= getOption('NmsServer_URL') %>text<%@ include view='footer' %>"
    conversion = convert(source)
    assert conversion.unconverted == [
        "<% var x = 1; %>",
        "<%= getOption('NmsServer_URL') %>",
        "<%@ include view='footer' %>",
    ]
    assert render(conversion.liquid) == "jane+shop@example.comtext"


def test_liquid_delimiters_in_an_unconverted_snippet_cannot_swallow_the_rest() -> None:
    source = '<% var s = "{{ x"; %>A<% s = "{% endcomment %}{% raw %}"; %>B<%= rtEvent.ctx.account.label %>'
    conversion = convert(source)
    assert conversion.unconverted == ['<% var s = "{{ x"; %>', '<% s = "{% endcomment %}{% raw %}"; %>']
    assert render(conversion.liquid) == "ABGold"


@pytest.mark.parametrize(
    "text",
    [
        "Use code {{WELCOME}} at checkout",
        "{% if x %}not a tag{% endif %}",
        "a {% raw %} b {% endraw %} c {%- endraw -%} d",
        "brace at the end {",
        "{{{",
        "}} %} lone closers",
    ],
)
def test_literal_liquid_delimiters_render_as_written(text: str) -> None:
    conversion = convert(f"{text}<%= rtEvent.ctx.account.label %>{text}")
    assert conversion.unconverted == []
    assert render(conversion.liquid) == f"{text}Gold{text}"


ORDER_CONFIRMATION = """\
<html><body>
<p>Dear <%= escapeXMLString(rtEvent.ctx.customer.@firstName) %> <%= rtEvent.ctx.customer.@lastName %>,</p>
<p>Thank you for order <%= rtEvent.ctx.order.@id %> of <%= formatDate(rtEvent.ctx.order.@date, "%2D/%2M/%4Y") %>.</p>
<% if (rtEvent.ctx.account.label == "Gold") { %>
<p>As a <%= rtEvent.ctx.account.label %> member, shipping is free.</p>
<% } %>
<a href="https://shop.example.com/orders?id=<%= encodeURIComponent(rtEvent.ctx.order.@id) %>&amp;\
lang=<%= rtEvent.language %>">Track</a>
<p style="font-family:{{brand-font}}">Shop {{ again }}</p>
</body></html>
"""


def test_order_confirmation_renders_personalized() -> None:
    conversion = convert(ORDER_CONFIRMATION)
    assert conversion.unconverted == [
        '<%= formatDate(rtEvent.ctx.order.@date, "%2D/%2M/%4Y") %>',
        '<% if (rtEvent.ctx.account.label == "Gold") { %>',
        "<% } %>",
    ]
    ctx = {
        "customer": {"@firstName": "Jane", "@lastName": "Doe"},
        "account": {"label": "Gold"},
        "order": {"@id": "A 7"},
    }
    html = Liquid().compile(conversion.liquid, field="email.html", html=True).render(ctx=ctx, event=EVENT)
    assert (
        html
        == """\
<html><body>
<p>Dear Jane Doe,</p>
<p>Thank you for order A 7 of .</p>

<p>As a Gold member, shipping is free.</p>

<a href="https://shop.example.com/orders?id=A+7&amp;lang=fr">Track</a>
<p style="font-family:{{brand-font}}">Shop {{ again }}</p>
</body></html>
"""
    )


# Text rich in the characters that matter to JST and Liquid, never opening a JST snippet itself.
LITERAL = st.lists(
    st.one_of(
        st.text(alphabet="ab <>{}%#-=@\"'\n", max_size=8),
        st.sampled_from(["{{", "}}", "{%", "%}", "{% raw %}", "{% endraw %}", "{%- endraw -%}", "{% comment %}"]),
        st.sampled_from(["{% endcomment %}", "{% doc %}", "{%#", "{", "<", "%>"]),
    ),
    max_size=6,
).map("".join)
LITERAL_TEXT = LITERAL.filter(lambda text: "<%" not in text)
CODE = LITERAL.filter(lambda text: "%>" not in text)
# (snippet, what it renders to with CTX and EVENT, or None when it must stay unconverted)
CONVERTED = st.sampled_from(
    [
        ("<%= rtEvent.ctx.customer.@lastName %>", "O&#39;Neil &lt;b&gt;"),
        ("<%=escapeXMLString(rtEvent.ctx.account.label)%>", "Gold"),
        ("<%= encodeURIComponent(rtEvent.email) %>", "jane%2Bshop%40example.com"),
        ("<%= batchEvent.ctx.order.ship-to.city.toUpperCase() %>", "LYON"),
        ("<%= rtEvent.externalId %>", "ext-7"),
    ]
)
UNCONVERTED = st.one_of(
    CODE.map(lambda code: (f"<% {code}%>", None)),
    CODE.map(lambda code: (f"<%= unknownFunction({code}) %>", None)),
    CODE.map(lambda code: (f"<%@ include {code}%>", None)),
)


@given(
    pieces=st.lists(st.tuples(LITERAL_TEXT, st.one_of(CONVERTED, UNCONVERTED)), max_size=6),
    tail=LITERAL_TEXT,
)
def test_random_text_and_snippets_compile_and_render_as_expected(
    pieces: list[tuple[str, tuple[str, str | None]]], tail: str
) -> None:
    source = "".join(text + snippet for text, (snippet, _) in pieces) + tail
    conversion = convert(source)
    assert conversion.unconverted == [snippet for _, (snippet, rendered) in pieces if rendered is None]
    expected = "".join(text + (rendered or "") for text, (_, rendered) in pieces) + tail
    assert render(conversion.liquid) == expected


@given(source=st.one_of(st.text(), st.lists(st.one_of(LITERAL, st.sampled_from(["<%", "<%=", "<%@"]))).map("".join)))
def test_any_source_converts_to_compilable_liquid(source: str) -> None:
    conversion = convert(source)
    position = 0
    for snippet in conversion.unconverted:  # verbatim, in order of appearance
        position = source.index(snippet, position) + len(snippet)
