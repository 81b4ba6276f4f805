"""The credit platform simulator: dataset generator and HTTP server (spec: credit-platform-api.md)."""
