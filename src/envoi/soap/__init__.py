"""The Adobe Campaign-compatible SOAP front door: PushEvent, PushEvents, Logon, Logoff, and their WSDL."""
