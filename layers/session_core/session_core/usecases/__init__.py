"""What the service does, one module per concern; the functions call these."""
