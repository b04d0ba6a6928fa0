"""Authentication and authorisation: JWT verification, realm keys, the principal, route requirements."""
