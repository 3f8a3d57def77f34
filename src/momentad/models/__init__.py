"""Model loading (MOMENT) and shared torch helpers."""
