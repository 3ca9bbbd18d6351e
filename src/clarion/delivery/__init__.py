"""Message content: per-channel templates, sandboxed rendering, MJML and validation (no database access)."""
