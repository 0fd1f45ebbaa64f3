"""Readers for the on-disk dataset formats; each returns uint8 NCHW images and int64 labels (numpy)."""
