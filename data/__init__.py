"""The data layer: settings, the models and their states, transactions that never say "database is locked",
and where files live on disk. It knows nothing of pages, requests or the photo-day rules above it."""
