"""Loaders, with validation, for the Upworthy Research Archive and recommendation datasets."""
