"""Request and response glue: what the functions' entry points are built from."""
