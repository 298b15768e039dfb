"""`POST /v1/embeddings` (extension): ImageBind embeddings of text or media."""
