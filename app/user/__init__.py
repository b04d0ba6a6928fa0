"""The users directory, built-in sign-in and service accounts."""
