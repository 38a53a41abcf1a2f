"""Authentication: signed access tokens (clinicians, integrations) and single-use stream tickets."""
