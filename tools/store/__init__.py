"""The fleet store: schema, engine, migrations, bulk writes, ingest."""
