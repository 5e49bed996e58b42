"""SOAP 1.1 responses and faults, in the shapes Adobe Campaign's clients parse."""

from __future__ import annotations

import re
from collections.abc import Iterable

from lxml import etree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
ENCODING = "http://schemas.xmlsoap.org/soap/encoding/"
# What XML 1.0 cannot carry, even escaped (control characters, lone surrogates): a fault that repeats a
# caller's header must still be a well-formed answer.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _envelope() -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"SOAP-ENV": SOAP_ENV, "xsi": XSI, "xsd": XSD})
    return envelope, etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")


def _bytes(envelope: etree._Element) -> bytes:
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def response(namespace: str, operation: str, values: Iterable[tuple[str, str, str]]) -> bytes:
    """``<urn:{operation}Response>`` holding unqualified ``<name xsi:type="type">value</name>`` elements."""
    envelope, body = _envelope()
    answer = etree.SubElement(body, f"{{{namespace}}}{operation}Response", nsmap={"urn": namespace})
    answer.set(f"{{{SOAP_ENV}}}encodingStyle", ENCODING)
    for name, xsd_type, value in values:
        item = etree.SubElement(answer, name)
        item.set(f"{{{XSI}}}type", xsd_type)
        item.text = value
    return _bytes(envelope)


def fault(code: str, message: str, detail: str | None = None) -> bytes:
    """``code`` is Client (the request is wrong) or Server (we failed)."""
    envelope, body = _envelope()
    element = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(element, "faultcode").text = f"SOAP-ENV:{code}"
    etree.SubElement(element, "faultstring").text = _NOT_XML.sub("\ufffd", message)
    if detail:
        etree.SubElement(element, "detail").text = _NOT_XML.sub("\ufffd", detail)
    return _bytes(envelope)
