"""Media references in requests → verified bytes: fetching (`fetch`), the SSRF
defence (`ssrf`: which addresses may be fetched), and loading the media parts of
chat and embedding requests (`parts`)."""
