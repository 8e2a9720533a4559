"""What every wing stands on: AWS clients, settings, observability, the Management API, JWT verification."""
