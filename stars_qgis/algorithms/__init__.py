"""One Processing algorithm per file; the provider lists them."""
