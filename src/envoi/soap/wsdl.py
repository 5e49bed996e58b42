"""WSDL documents for nms:rtEvent, nms:batchEvent and xtk:session (document/literal, unqualified children,
as Adobe Campaign's own), so that SOAP toolkits such as zeep can build a client from them."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

_SERVICES = {
    "nms:rtEvent": ("urn:nms:rtEvent", "rtEvent", ("PushEvent", "PushEvents")),
    "nms:batchEvent": ("urn:nms:batchEvent", "batchEvent", ("PushEvent", "PushEvents")),
    "xtk:session": ("urn:xtk:session", "session", ("Logon", "Logoff")),
}

_ELEMENTS = {
    "PushEvent": ('<s:element name="sessiontoken" type="s:string"/><s:element name="domEvent" type="tns:Element"/>',
                  '<s:element name="plId" type="s:long"/>'),
    "PushEvents": ('<s:element name="sessiontoken" type="s:string"/>'
                   '<s:element name="domEventCollection" type="tns:Element"/>',
                   '<s:element name="plId" type="s:long" maxOccurs="unbounded"/>'),
    "Logon": ('<s:element name="sessiontoken" type="s:string"/><s:element name="strLogin" type="s:string"/>'
              '<s:element name="strPassword" type="s:string"/>'
              '<s:element name="elemParameters" type="tns:Element" minOccurs="0"/>',
              '<s:element name="pstrSessionToken" type="s:string"/>'
              '<s:element name="pSessionInfo" type="tns:Element" minOccurs="0"/>'
              '<s:element name="pstrSecurityToken" type="s:string"/>'),
    "Logoff": ('<s:element name="sessiontoken" type="s:string"/>', ""),
}  # fmt: skip

SCHEMAS = tuple(_SERVICES)


def wsdl(schema: str, location: str) -> str:
    namespace, short, operations = _SERVICES[schema]
    elements, messages, port_ops, binding_ops = [], [], [], []
    for op in operations:
        request, answer = _ELEMENTS[op]
        elements.append(
            f'<s:element name="{op}"><s:complexType><s:sequence>{request}</s:sequence></s:complexType></s:element>'
            f'<s:element name="{op}Response"><s:complexType><s:sequence>{answer}</s:sequence></s:complexType>'
            "</s:element>"
        )
        messages.append(
            f'<message name="{op}In"><part name="parameters" element="tns:{op}"/></message>'
            f'<message name="{op}Out"><part name="parameters" element="tns:{op}Response"/></message>'
        )
        port_ops.append(
            f'<operation name="{op}"><input message="tns:{op}In"/><output message="tns:{op}Out"/></operation>'
        )
        binding_ops.append(
            f'<operation name="{op}"><soap:operation soapAction="{schema}#{op}" style="document"/>'
            '<input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"'
        f' xmlns:s="http://www.w3.org/2001/XMLSchema" xmlns:tns="{namespace}" targetNamespace="{namespace}">'
        f'<types><s:schema elementFormDefault="unqualified" targetNamespace="{namespace}">'
        '<s:complexType name="Element"><s:sequence><s:any processContents="lax"/></s:sequence></s:complexType>'
        f"{''.join(elements)}</s:schema></types>"
        f"{''.join(messages)}"
        f'<portType name="{short}MethodsSoap">{"".join(port_ops)}</portType>'
        f'<binding name="{short}MethodsSoap" type="tns:{short}MethodsSoap">'
        '<soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>'
        f"{''.join(binding_ops)}</binding>"
        f'<service name="XtkJobService"><port binding="tns:{short}MethodsSoap" name="{short}MethodsSoap">'
        f"<soap:address location={quoteattr(location)}/></port></service></definitions>"
    )
