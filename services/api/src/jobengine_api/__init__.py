"""jobengine HTTP API: accepts, validates and reports jobs."""
