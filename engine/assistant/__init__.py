"""The support assistant: plain-language requests become answers, questions, refusals or
pull requests (docs/architecture.md, "The two flows").

``prompt`` builds what the model sees (Hearth's help text, the tenant's non-secret
configuration as quoted data, the conversation); ``model`` calls an Ollama-compatible
endpoint through the ``ollama`` client with a timeout and bounded retries; ``decide``
(pure) turns the model's reply into a decision: it checks permissions, the tenant's
configuration and every value, and turns intents into round-trip edits; ``scope``
compares a branch's change with the intents; ``service`` stores requests, runs the
queue and opens pull requests through ``engine.pulls``. The model only proposes.
"""
