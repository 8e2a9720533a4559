"""The sessions table: the only code that builds item keys and calls DynamoDB (table.py has the layout)."""
