"""Frozen pretrained encoders: audio in, embeddings out, in the shape of the HEAR 2021 API."""
