"""What tests and benchmarks share: app builders, factories, live servers, generated photos, fakes."""
