"""Integer numbers for acting subjects, per tenant: seed 003's created_by_id and updated_by_id."""
