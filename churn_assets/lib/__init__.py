"""Pure helpers with no Dagster in them, so they are easy to unit test."""
