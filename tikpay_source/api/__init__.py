"""The Data API's side: the HTTP client and its auth, the answers as values, the request ledger, when to poll, downloads."""
