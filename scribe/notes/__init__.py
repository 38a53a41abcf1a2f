"""Clinical notes: SOAP drafts in which every statement links to its evidence."""
