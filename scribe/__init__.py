"""scribe: on-premises clinical scribe. Audio in, transcript and SOAP note out, FHIR R4 to the EHR."""

__version__ = "0.1.0"
