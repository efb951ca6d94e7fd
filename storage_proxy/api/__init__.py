"""HTTP surfaces of the storage proxy: internal (cluster secret) and public (tokens)."""
