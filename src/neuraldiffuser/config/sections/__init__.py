"""One module per pipeline stage; each holds only pydantic models (no heavy imports)."""
