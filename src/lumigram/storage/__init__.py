"""Where generated files and reference images are kept (local folder; S3 later)."""
