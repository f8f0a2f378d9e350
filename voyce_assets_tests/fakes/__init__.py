"""Local HTTP servers that speak the wire format of services the tests cannot reach."""
