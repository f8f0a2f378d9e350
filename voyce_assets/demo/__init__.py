"""Demo data: a realistic Voyce app database with real spoken feedback, for laptops and tests."""
