"""FHIR R4, outward: the resources scribe writes for a note, search over them, and delivery to the EHR."""
