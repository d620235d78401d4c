"""The CLI's client of the Hearth API (``api``) and its sub-commands (``commands``)."""
