"""The `scribe` CLI's command groups, one module each; `scribe.cli` assembles them into one app."""
