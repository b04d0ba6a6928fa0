"""Seeds 000 and 001: PATCH /api/v1/tickets/{id}/status and PUT /api/v1/tickets/{id}."""
