"""Safe XML parsing for SOAP requests, and the ctx mapping from XML to the JSON that REST stores.

ctx mapping: element -> key, attribute -> "@name" key, repeated elements -> list, text of a leaf -> string;
text beside attributes or child elements is kept under "#text".
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from envoi.errors import ValidationFailed
from envoi.nesting import MAX_NESTING

_PARSER = etree.XMLParser(
    resolve_entities=False,  # no entity ever expands: no billion laughs, no XXE
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


class MalformedXml(ValidationFailed):
    code = "malformed_xml"


def parse_document(body: bytes) -> etree._Element:
    """The document's root; refuses DTDs and entity declarations before the parser sees them."""
    head = body[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in body.upper():
        raise MalformedXml("DTDs and entity declarations are not accepted", field="body")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as error:
        line, column = error.position
        raise MalformedXml(
            f"malformed XML at line {line}, column {column}: {error.msg}", field="body", details={"line": line}
        ) from None
    if root.getroottree().docinfo.doctype:  # type: ignore[union-attr]
        raise MalformedXml("DTDs are not accepted", field="body")
    return root


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def children(element: etree._Element) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str)]


def child(element: etree._Element, name: str) -> etree._Element | None:
    """The first child with this local name, whatever namespace the caller wrote it in."""
    return next((c for c in children(element) if local_name(c) == name), None)


def element_to_json(element: etree._Element, depth: int = 1) -> Any:
    if depth > MAX_NESTING:  # as REST refuses JSON nested this deep
        raise ValidationFailed(f"ctx nests deeper than {MAX_NESTING} elements", field="ctx")
    attributes: dict[str, Any] = {"@" + etree.QName(key).localname: value for key, value in element.attrib.items()}
    kids = children(element)
    if not kids:
        text = element.text or ""
        if not attributes:
            return text
        if text.strip():
            attributes["#text"] = text
        return attributes
    result = attributes
    mixed = (element.text or "") + "".join(kid.tail or "" for kid in kids)
    if mixed.strip():
        result["#text"] = mixed.strip()
    repeated: set[str] = set()
    for kid in kids:
        key, value = local_name(kid), element_to_json(kid, depth + 1)
        if key in repeated:
            result[key].append(value)
        elif key in result:
            result[key] = [result[key], value]
            repeated.add(key)
        else:
            result[key] = value
    return result


def ctx_to_json(ctx: etree._Element) -> dict[str, Any]:
    value = element_to_json(ctx)
    if isinstance(value, str):
        return {"#text": value} if value.strip() else {}
    return dict(value)


def json_to_element(name: str, value: Any) -> etree._Element:
    """The inverse mapping (for tests and tools): the XML that ctx_to_json reads back as ``value``."""
    element = etree.Element(name)
    _fill(element, value)
    return element


def _fill(element: etree._Element, value: Any) -> None:
    if isinstance(value, str):
        element.text = value
        return
    for key, item in value.items():
        if key.startswith("@"):
            element.set(key[1:], item)
        elif key == "#text":
            element.text = item
        else:
            for one in item if isinstance(item, list) else [item]:
                _fill(etree.SubElement(element, key), one)
