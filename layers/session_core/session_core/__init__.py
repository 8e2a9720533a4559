"""Domain code shared by every function of the broadcast session service."""
