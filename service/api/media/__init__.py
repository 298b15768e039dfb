"""Media references in requests → verified bytes: fetching (SSRF-hardened),
the address policy, and loading the media parts of chat and embedding requests."""
