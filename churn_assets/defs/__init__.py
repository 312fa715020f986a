"""One subpackage per pipeline stage; each is one Dagster asset group."""
