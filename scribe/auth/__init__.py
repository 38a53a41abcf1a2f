"""Authentication: scribe's own access tokens, single-use stream tickets, local accounts and browser
sessions, the site's OIDC provider, and SMART Backend Services clients (one module each)."""
