"""Customer-base prediction models: pure numerical code, no database access."""
