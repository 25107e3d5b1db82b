"""Text side of the data path: the Qwen-Audio tokenizer (tiktoken BPE + released special tokens), a SentencePiece
backend with the same interface, and the builder that turns a manifest row into tagged token ids and labels."""
