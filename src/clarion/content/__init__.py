"""The template language: per-channel content, sandboxed rendering, filters, MJML/HTML, validation and limits.

No database access and no network: a template and a recipient's context in, text out."""
